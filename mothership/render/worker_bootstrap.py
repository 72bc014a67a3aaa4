"""Bootstrap data for a Cluster API Machine (K0sWorkerConfig): pure.

The data is cloud-config: `write_files` puts the user's files and mothership's join script
(render/node_join.py, the same script `mothership token create --join-command` runs) on the
machine; `runcmd` runs the user's pre-commands, the join, the post-commands, and last writes
Cluster API's success sentinel, so a machine whose join failed never claims success.

The SSH provider has no cloud-init on the other side: :func:`to_shell` turns the same
cloud-config into one POSIX script that does what cloud-init would with those two keys.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from mothership.api.bootstrap.v1beta2 import SUCCESS_SENTINEL
from mothership.render import names
from mothership.render.node_join import JoinError, JoinOptions

DEFAULT_WORKING_DIR = "/run/cluster-api"
SCRIPT_NAME = "mothership-join.sh"
FORMAT = "cloud-config"


@dataclass(frozen=True)
class BootstrapFile:
    path: str
    content: str
    permissions: str = "0644"


def worker_options(
    args: list[str] | None,
    *,
    node_name: str,
    download_url: str = "",
    registry_mirror: str = "",
    preinstalled: bool = False,
) -> JoinOptions:
    """JoinOptions from k0s worker flags, as k0smotron's `args` carries them.

    --labels=k=v,... and --taints=... become the Node's labels and taints,
    --kubelet-extra-args="--a=b --c=d" extra kubelet flags; anything else is refused with
    its index, since silently dropping a flag would make a node other than the one asked for.
    """
    labels: dict[str, str] = {}
    taints: list[str] = []
    kubelet: list[str] = []
    for i, arg in enumerate(args or []):
        flag, _, value = arg.partition("=")
        if flag == "--labels":
            for pair in filter(None, value.split(",")):
                key, sep, val = pair.partition("=")
                if not sep:
                    raise JoinError(f"spec.args[{i}]: label {pair!r} is not key=value")
                labels[key] = val
        elif flag == "--taints":
            taints += [t for t in value.split(",") if t]
        elif flag == "--kubelet-extra-args":
            kubelet += shlex.split(value)
        else:
            raise JoinError(
                f"spec.args[{i}]: {flag!r} is not a worker flag mothership applies; use "
                "--labels=k=v,..., --taints=key=value:Effect,... or --kubelet-extra-args='--a=b'"
            )
    return JoinOptions(
        download_url=download_url,
        registry_mirror=registry_mirror,
        preinstalled=preinstalled,
        node_name=node_name,
        labels=labels,
        taints=tuple(taints),
        kubelet_args=tuple(kubelet),
    )


def script_path(working_dir: str | None) -> str:
    return f"{(working_dir or DEFAULT_WORKING_DIR).rstrip('/')}/{SCRIPT_NAME}"


def join_commands(
    path: str, pre_commands: list[str] | None, post_commands: list[str] | None
) -> list[str]:
    """The commands, in order: the user's pre-commands, the join, the post-commands, and
    last Cluster API's success sentinel."""
    sentinel_dir = SUCCESS_SENTINEL.rsplit("/", 1)[0]
    return [
        *(pre_commands or []),
        f"sh {shlex.quote(path)}",
        *(post_commands or []),
        f"mkdir -p {sentinel_dir} && touch {SUCCESS_SENTINEL}",
    ]


def shell_commands(runcmd: Sequence[Any]) -> list[str]:
    """runcmd entries as script lines: a list runs as argv, a string through sh -c."""
    lines = []
    for command in runcmd:
        if isinstance(command, list):
            lines.append(" ".join(shlex.quote(str(part)) for part in command))
        else:
            lines.append(f"sh -c {shlex.quote(str(command))}")
    return lines


def cloud_config(
    join_script: str,
    *,
    files: Sequence[BootstrapFile] = (),
    pre_commands: list[str] | None = None,
    post_commands: list[str] | None = None,
    working_dir: str | None = None,
    custom_user_data: str = "",
) -> str:
    """The whole cloud-config; deterministic for equal input."""
    path = script_path(working_dir)
    write_files = [
        {"path": f.path, "content": f.content, "permissions": f.permissions} for f in files
    ]
    write_files.append({"path": path, "content": join_script, "permissions": "0700"})
    runcmd = join_commands(path, pre_commands, post_commands)
    body = yaml.safe_dump(
        {"write_files": write_files, "runcmd": runcmd}, sort_keys=False, width=1_000_000
    )
    text = f"#cloud-config\n{body}"
    if custom_user_data:
        text += f"\n{custom_user_data}"
    return text


def to_shell(cloud_config_text: str) -> str:
    """A POSIX script doing what cloud-init does with `write_files` and `runcmd`, stopping
    at the first failing command (as cloud-init's runcmd does not: the sentinel must not be
    written after a failure)."""
    first = next(yaml.safe_load_all(cloud_config_text.split("\n#cloud-config\n")[0]))
    if not isinstance(first, dict):
        raise ValueError("bootstrap data is not a cloud-config mapping")
    lines = ["#!/bin/sh", "set -eu"]
    for entry in first.get("write_files") or []:
        path = str(entry["path"])
        content = base64.b64encode(str(entry.get("content") or "").encode()).decode()
        mode = str(entry.get("permissions") or "0644")
        lines.append(f"mkdir -p {shlex.quote(path.rsplit('/', 1)[0] or '/')}")
        lines.append(f"echo {content} | base64 -d > {shlex.quote(path)}")
        lines.append(f"chmod {shlex.quote(mode)} {shlex.quote(path)}")
    lines += shell_commands(first.get("runcmd") or [])
    return "\n".join(lines) + "\n"


def bootstrap_secret(
    config: dict[str, Any],
    cluster: str,
    value: str,
    metadata: dict[str, Any] | None = None,
    *,
    data_format: str = FORMAT,
) -> dict[str, Any]:
    """The Secret Cluster API hands to the infrastructure provider: `value` and `format`,
    named after the config, owned by it, labelled with the cluster name."""
    meta = config["metadata"]
    extra = metadata or {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": names.CAPI_SECRET_TYPE,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": {
                **(extra.get("labels") or {}),
                names.CAPI_CLUSTER_NAME_LABEL: cluster,
            },
            **({"annotations": dict(extra["annotations"])} if extra.get("annotations") else {}),
            "ownerReferences": [
                {
                    "apiVersion": config["apiVersion"],
                    "kind": config["kind"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {
            "value": base64.b64encode(value.encode()).decode(),
            "format": base64.b64encode(data_format.encode()).decode(),
        },
    }
