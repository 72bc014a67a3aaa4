"""Merging a tenant's kubeconfig into the user's own, the way `vcluster connect` does.

The merge touches only the entries named after the tenant context; everything else in the
file stays as it was, byte-for-byte in meaning. The previous file is kept next to it as
``<file>.mothership.bak`` and the new one replaces it atomically, so an interrupted merge
never leaves a half-written kubeconfig. The merge functions are pure; only
:func:`write_atomically` touches the disk.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mothership.cli.connection import ORIGIN_EXTENSION
from mothership.cli.errors import InvalidInput

Obj = dict[str, Any]
SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))
BACKUP_SUFFIX = ".mothership.bak"


def context_name(namespace: str, cluster: str) -> str:
    return f"mothership-{namespace}-{cluster}"


def renamed(tenant: Obj, name: str, origin: Obj | None = None) -> Obj:
    """The tenant kubeconfig's current context, with its cluster, user and context all
    called ``name``; ``origin`` (where the mothership is) rides along as an extension."""
    contexts = {c.get("name"): c.get("context") or {} for c in tenant.get("contexts") or []}
    current = tenant.get("current-context") or next(iter(contexts), None)
    if current not in contexts:
        raise InvalidInput("the tenant kubeconfig names no usable context")
    ctx = contexts[current]
    cluster = _entry(tenant, "clusters", ctx.get("cluster"), "cluster")
    user = _entry(tenant, "users", ctx.get("user"), "user")
    new_ctx: Obj = {"cluster": name, "user": name}
    if ctx.get("namespace"):
        new_ctx["namespace"] = ctx["namespace"]
    if origin:
        new_ctx["extensions"] = [{"name": ORIGIN_EXTENSION, "extension": origin}]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": new_ctx}],
        "current-context": name,
    }


def _entry(config: Obj, section: str, name: Any, key: str) -> Obj:
    for item in config.get(section) or []:
        if item.get("name") == name:
            return copy.deepcopy(item.get(key) or {})
    raise InvalidInput(f"the tenant kubeconfig has no {key} named {name!r}")


def merge(base: Obj | None, addition: Obj, switch: bool = True) -> tuple[Obj, list[str]]:
    """base with addition's entries added or replaced by name; returns (merged, replaced)."""
    out: Obj = copy.deepcopy(base) if base else {"apiVersion": "v1", "kind": "Config"}
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Config")
    replaced: list[str] = []
    for section, key in SECTIONS:
        items = out.get(section)
        if items is None:
            items = out[section] = []
        if not isinstance(items, list):
            raise InvalidInput(f"the kubeconfig's {section} is not a list; fix the file first")
        for new in addition.get(section) or []:
            index = next((i for i, it in enumerate(items) if it.get("name") == new["name"]), None)
            if index is None:
                items.append(copy.deepcopy(new))
            else:
                if items[index].get(key) != new.get(key):
                    replaced.append(f"{key} {new['name']}")
                items[index] = copy.deepcopy(new)
    if switch or not out.get("current-context"):
        out["current-context"] = addition.get("current-context")
    return out, replaced


def read(path: Path) -> Obj | None:
    """A kubeconfig file as a dict; None when it does not exist; refuses what it cannot keep."""
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"{path} is not valid YAML ({exc}); fix it or merge into another file with --merge-into"
        ) from exc
    if data is None:
        return None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} is not a kubeconfig; merge into another file with --merge-into")
    return data


def write_atomically(path: Path, data: Obj) -> Path | None:
    """Write data to path via a temporary file; return the backup of the old file, if any."""
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    mode = 0o600
    if path.exists():
        mode = path.stat().st_mode & 0o777
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        backup.write_bytes(path.read_bytes())
        os.chmod(backup, mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(data, fh, sort_keys=False, default_flow_style=False)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup


def merge_target(explicit: Path | None) -> Path:
    """Where --merge writes: --merge-into, else the first $KUBECONFIG file, else ~/.kube/config."""
    if explicit is not None:
        return explicit.expanduser()
    env = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    return Path(env[0]).expanduser() if env else Path.home() / ".kube" / "config"


def is_local_mothership_kubeconfig(path: Path) -> bool:
    """The admin kubeconfig a local mothership keeps in its state dir (rewritten at start)."""
    return path.name == "kubeconfig" and (path.parent / "mothership.json").is_file()
