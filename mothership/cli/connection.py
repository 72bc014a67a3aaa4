"""Which cluster and namespace a command talks to, chosen the way kubectl chooses.

Order: ``--kubeconfig``, then ``$KUBECONFIG`` (several files, first one wins per name), then
``~/.kube/config``, then the in-cluster service account, then a running local mothership
named ``default`` (so ``mothership dev up`` is enough to start creating clusters).

One addition to kubectl's rules: when the chosen context is a tenant context written by
``mothership cluster kubeconfig --merge`` (kubectl now talks to the tenant) and no
``--context`` is given, mothership commands follow the context's origin record back to the
mothership the tenant lives in. kubectl users switch to the tenant; the mothership CLI keeps
managing clusters instead of asking a tenant for Clusters it cannot have.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from mothership.cli.errors import InvalidInput, MissingPrerequisite, err, note_target

FIELD_MANAGER = "mothership-cli"
ORIGIN_EXTENSION = "mothership.k0smotron.io/origin"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

KubeconfigOpt = typer.Option(
    None,
    "--kubeconfig",
    help="Kubeconfig of the mothership. Default: $KUBECONFIG, ~/.kube/config, in-cluster, "
    "then the running local mothership `default` (from `mothership dev up`).",
    show_default=False,
)
ContextOpt = typer.Option(
    None, "--context", help="Kubeconfig context to use (default: its current context)."
)
NamespaceOpt = typer.Option(
    None,
    "-n",
    "--namespace",
    help="Namespace (default: the context's namespace, else `default`).",
    show_default=False,
)


@dataclass(frozen=True)
class Target:
    """An API client bound to one mothership, and where it came from (for messages)."""

    client: Any  # lightkube.Client
    namespace: str
    kubeconfig: Path | None  # None: in-cluster service account
    context: str | None
    server: str

    def where(self) -> str:
        ctx = f"context {self.context!r}" if self.context else "in-cluster config"
        return f"{self.server} ({ctx})"


@dataclass(frozen=True)
class Source:
    """The kubeconfig files to read, and a note when the choice is not obvious."""

    files: list[Path]
    note: str = ""


def kubeconfig_source(explicit: Path | None) -> Source | None:
    """The kubeconfig files in kubectl's order; None when only in-cluster/local remain."""
    if explicit is not None:
        path = explicit.expanduser()
        if not path.is_file():
            raise InvalidInput(f"--kubeconfig {explicit}: no such file")
        return Source([path])
    env = os.environ.get("KUBECONFIG", "")
    if env.strip():
        files = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
        existing = [p for p in files if p.is_file()]
        if not existing:
            raise InvalidInput(
                f"KUBECONFIG={env} names no existing file; fix or unset it, or pass --kubeconfig"
            )
        return Source(existing)
    home = Path.home() / ".kube" / "config"
    if home.is_file():
        return Source([home])
    return None


def local_mothership_kubeconfig() -> Path | None:
    """The kubeconfig of the local mothership `default`, if it is running."""
    from mothership.testenv.local import LocalMothership

    try:
        ms = LocalMothership.load("default")
    except FileNotFoundError:
        return None
    apiserver = ms.sup.get("kube-apiserver")
    if apiserver is None or not apiserver.alive() or not ms.cfg.kubeconfig.is_file():
        return None
    return ms.cfg.kubeconfig


def load_merged(files: list[Path]) -> dict[str, Any]:
    """Several kubeconfig files as one, with kubectl's rule: the first definition wins.

    Relative certificate paths are made absolute against their own file, since after
    merging there is no single directory they could be relative to.
    """
    merged: dict[str, Any] = {"clusters": [], "contexts": [], "users": []}
    seen: dict[str, set[str]] = {key: set() for key in merged}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"kubeconfig {path} cannot be read: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"kubeconfig {path} is not a kubeconfig (not a mapping)")
        if not merged.get("current-context") and data.get("current-context"):
            merged["current-context"] = data["current-context"]
        for key in ("clusters", "contexts", "users"):
            for entry in data.get(key) or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                if name is None or name in seen[key]:
                    continue
                seen[key].add(name)
                merged[key].append(_absolute_paths(entry, path.parent))
    return merged


def _absolute_paths(entry: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(entry)
    for section in ("cluster", "user"):
        body = entry.get(section)
        if not isinstance(body, dict):
            continue
        fixed = dict(body)
        for key in ("certificate-authority", "client-certificate", "client-key", "tokenFile"):
            value = body.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                fixed[key] = str(base / value)
        out[section] = fixed
    return out


def context_entry(config: dict[str, Any], name: str | None) -> dict[str, Any] | None:
    for entry in config.get("contexts") or []:
        if entry.get("name") == name:
            return entry.get("context") or {}
    return None


def origin_of(context: dict[str, Any] | None) -> dict[str, Any] | None:
    """The origin record `cluster kubeconfig --merge` leaves on a tenant context."""
    for ext in (context or {}).get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == ORIGIN_EXTENSION:
            value = ext.get("extension")
            return value if isinstance(value, dict) else None
    return None


def connect(
    kubeconfig: Path | None = None,
    context: str | None = None,
    namespace: str | None = None,
    *,
    quiet: bool = False,
) -> Target:
    """A client for the mothership the flags and environment point at."""
    from lightkube import Client, KubeConfig

    source = kubeconfig_source(kubeconfig)
    if source is None:
        if (SERVICE_ACCOUNT / "token").is_file():
            config = KubeConfig.from_service_account()
            single = config.get()
            assert single is not None  # a service account config has its one context
            ns = namespace or (SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
            client = Client(config=single, namespace=ns, field_manager=FIELD_MANAGER)
            note_target(single.cluster.server)
            return Target(client, ns, None, None, single.cluster.server)
        local = local_mothership_kubeconfig()
        if local is None:
            raise MissingPrerequisite(
                "no cluster to talk to: no --kubeconfig, no $KUBECONFIG, no ~/.kube/config and "
                "no local mothership running. Start one with `mothership dev up`, or point "
                "--kubeconfig at a cluster where mothership is installed"
            )
        if not quiet:
            err.print(f"[dim]using the local mothership `default` ({local})[/]", highlight=False)
        source = Source([local])
    data = load_merged(source.files)
    chosen = context or data.get("current-context")
    if chosen and context_entry(data, chosen) is None:
        names = ", ".join(sorted(c.get("name", "") for c in data.get("contexts") or []))
        raise InvalidInput(
            f"context {chosen!r} is not in {_files(source.files)}; contexts there: {names or '-'}"
        )
    if context is None and (origin := origin_of(context_entry(data, chosen))):
        followed = _follow_origin(origin, chosen or "", quiet)
        if followed is not None:
            data, chosen, source = followed
    if not chosen:
        raise InvalidInput(f"{_files(source.files)} sets no current-context; pass --context NAME")
    ctx = context_entry(data, chosen) or {}
    ns = namespace or ctx.get("namespace") or "default"
    config = KubeConfig.from_dict(data, fname=source.files[0])
    single = config.get(context_name=chosen)
    assert single is not None  # `chosen` is one of its contexts (checked above)
    client = Client(config=single, namespace=ns, field_manager=FIELD_MANAGER)
    target = Target(client, ns, source.files[0], chosen, single.cluster.server)
    note_target(target.where())
    return target


def _follow_origin(
    origin: dict[str, Any], tenant_context: str, quiet: bool
) -> tuple[dict[str, Any], str, Source] | None:
    path = Path(str(origin.get("kubeconfig") or ""))
    if not path.is_file():
        return None
    data = load_merged([path])
    parent = origin.get("context") or data.get("current-context")
    if context_entry(data, parent) is None:
        return None
    if not quiet:
        err.print(
            f"[dim]kubectl's context {tenant_context!r} is a tenant; using its mothership "
            f"(context {parent!r} in {path})[/]",
            highlight=False,
        )
    return data, str(parent), Source([path])


def _files(files: list[Path]) -> str:
    return ", ".join(str(f) for f in files)
