"""Bootstrap data as Ignition (K0sWorkerConfig `spec.provisioner.type: ignition`): pure.

Machines that boot Fedora CoreOS or Flatcar read Ignition, not cloud-config. The same
content goes in: the user's files and mothership's join script as Ignition files, and the
commands cloud-config's runcmd would run (pre-commands, the join, post-commands, Cluster
API's success sentinel) as one script that a oneshot systemd unit runs once the network is
up, stopping at the first failure so a failed join never writes the sentinel. The unit
runs once: a marker under /var/lib (the sentinel is in /run) keeps it from joining again
after a reboot.

``spec.provisioner.ignition.additionalConfig`` is merged by Ignition itself
(``ignition.config.merge``). It must be an Ignition config (JSON, spec 3.x): k0smotron
takes Butane there and translates it, a translator mothership does not carry, so Butane is
refused with the way out.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Sequence

from mothership.render.worker_bootstrap import (
    BootstrapFile,
    join_commands,
    script_path,
    shell_commands,
)

FORMAT = "ignition"
SPEC_VERSION = "3.4.0"
UNIT = "mothership-bootstrap.service"
RUN_SCRIPT_NAME = "mothership-bootstrap.sh"
DONE_MARKER = "/var/lib/mothership/bootstrapped"
ADDITIONAL_FIELD = "spec.provisioner.ignition.additionalConfig"


class IgnitionError(ValueError):
    """The input cannot become Ignition; the message names the field and the fix."""


def _data_url(content: str) -> str:
    return "data:;base64," + base64.b64encode(content.encode()).decode()


def _mode(permissions: str, path: str) -> int:
    try:
        return int(permissions, 8)
    except ValueError:
        raise IgnitionError(f"file {path}: permissions {permissions!r} is not octal") from None


def _file(path: str, content: str, permissions: str) -> dict[str, object]:
    if not path.startswith("/"):
        raise IgnitionError(f"file {path!r}: Ignition writes absolute paths only")
    return {
        "path": path,
        "mode": _mode(permissions, path),
        "overwrite": True,
        "contents": {"source": _data_url(content)},
    }


def check_additional_config(text: str) -> dict[str, object]:
    """The additional config as a mapping, if it is an Ignition 3.x config; else why not."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise IgnitionError(
            f"{ADDITIONAL_FIELD}: not an Ignition config (JSON); mothership does not "
            "translate Butane: run `butane` on it and give the JSON it prints"
        ) from None
    version = (doc.get("ignition") or {}).get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith("3."):
        raise IgnitionError(
            f"{ADDITIONAL_FIELD}: needs ignition.version 3.x (Ignition spec 3), got {version!r}"
        )
    return dict(doc)


def unit(run_script: str) -> str:
    """The oneshot unit: after the network, once (the marker), the script, then the marker."""
    return (
        "[Unit]\n"
        "Description=Join this machine to its Kubernetes cluster (mothership bootstrap)\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        f"ConditionPathExists=!{DONE_MARKER}\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart=/bin/sh {shlex.quote(run_script)}\n"
        f"ExecStartPost=/bin/sh -c 'mkdir -p {DONE_MARKER.rsplit('/', 1)[0]} "
        f"&& touch {DONE_MARKER}'\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def ignition_config(
    join_script: str,
    *,
    files: Sequence[BootstrapFile] = (),
    pre_commands: list[str] | None = None,
    post_commands: list[str] | None = None,
    working_dir: str | None = None,
    additional_config: str = "",
) -> str:
    """The whole Ignition config (spec 3.4.0) as JSON; deterministic for equal input."""
    join_path = script_path(working_dir)
    run_path = f"{join_path.rsplit('/', 1)[0]}/{RUN_SCRIPT_NAME}"
    commands = join_commands(join_path, pre_commands, post_commands)
    run_script = "\n".join(["#!/bin/sh", "set -eu", *shell_commands(commands)]) + "\n"
    ignition: dict[str, object] = {"version": SPEC_VERSION}
    if additional_config.strip():
        check_additional_config(additional_config)
        ignition["config"] = {"merge": [{"source": _data_url(additional_config)}]}
    config = {
        "ignition": ignition,
        "storage": {
            "files": [
                *(_file(f.path, f.content, f.permissions) for f in files),
                _file(join_path, join_script, "0700"),
                _file(run_path, run_script, "0700"),
            ]
        },
        "systemd": {"units": [{"name": UNIT, "enabled": True, "contents": unit(run_path)}]},
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":"))
