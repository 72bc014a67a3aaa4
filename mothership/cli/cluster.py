"""`mothership cluster`: create, list, inspect, delete hosted control planes; their kubeconfigs."""

from __future__ import annotations

import base64
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
import yaml
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource
from lightkube.resources.core_v1 import Pod
from lightkube.types import CascadeType
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mothership.api.k0smotron.v1beta2 import CONDITION_KUBECONFIG_SECRET_AVAILABLE
from mothership.cli import clusterview, kubeconfigs, objects, progress
from mothership.cli.connection import (
    ContextOpt,
    KubeconfigOpt,
    NamespaceOpt,
    Target,
    connect,
)
from mothership.cli.errors import (
    EXIT_CODES_HELP,
    InvalidInput,
    NotReady,
    err,
    friendly_errors,
    http_status_errors,
    status_code,
)
from mothership.cli.oidc_settings import oidc_settings
from mothership.cli.output import Output, OutputOpt, age, as_list, dump
from mothership.identity.kubeconfig import oidc_kubeconfig
from mothership.specs.clusters import Checked, ClusterFlags, cluster_from_flags, load_manifests

app = typer.Typer(
    help="Create, list, inspect and delete hosted control planes (k0smotron.io Clusters).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=EXIT_CODES_HELP,
)
console = Console(soft_wrap=True)


def _wide() -> Console:
    """Tables keep their rows on one line when the output is not a terminal (logs, pipes)."""
    return console if console.is_terminal else Console(width=max(console.width, 200))


DebugOpt = typer.Option(False, "--debug", help="Show stack traces.")
TimeoutOpt = typer.Option(600.0, "--timeout", help="Seconds to wait with --wait.")
CLI_DEFAULT_DISTRIBUTION = "kubernetes"


class Distribution(StrEnum):
    k0s = "k0s"
    kubernetes = "kubernetes"


class Storage(StrEnum):
    etcd = "etcd"
    kine = "kine"
    nats = "nats"


class Persistence(StrEnum):
    emptyDir = "emptyDir"
    hostPath = "hostPath"
    pvc = "pvc"


class ServiceType(StrEnum):
    ClusterIP = "ClusterIP"
    NodePort = "NodePort"
    LoadBalancer = "LoadBalancer"


CREATE_EPILOG = f"""[bold]Examples[/]

  [dim]# a control plane of upstream Kubernetes components, wait until it serves[/]
  mothership cluster create demo --wait

  [dim]# k0s (what k0smotron runs), 3 replicas on a managed etcd[/]
  mothership cluster create prod --distribution k0s --replicas 3 --storage etcd

  [dim]# kine on PostgreSQL, credentials kept in a Secret (key K0SMOTRON_KINE_DATASOURCE_URL)[/]
  mothership cluster create pg --kine-secret pg-url --replicas 2

  [dim]# data on a PersistentVolumeClaim, reachable on node ports[/]
  mothership cluster create keep --persistence pvc --persistence-size 5Gi --service-type NodePort

  [dim]# from a manifest (k0smotron manifests apply unchanged), or from stdin[/]
  mothership cluster create -f cluster.yaml --wait
  cat cluster.yaml | mothership cluster create -f -

  [dim]# print the Cluster instead of creating it[/]
  mothership cluster create demo --replicas 2 --dry-run -o yaml

{EXIT_CODES_HELP}"""


@app.command(epilog=CREATE_EPILOG)
def create(
    name: str | None = typer.Argument(None, help="Cluster name (omit with -f)."),
    filename: str | None = typer.Option(
        None, "-f", "--filename", help="Apply this manifest instead of flags ('-': stdin)."
    ),
    distribution: Distribution | None = typer.Option(
        None,
        "--distribution",
        help="kubernetes: upstream kube-apiserver, controller-manager, scheduler and "
        "konnectivity containers; k0s: one k0s container per pod, as k0smotron runs. "
        "The CLI default is kubernetes (its images are built by the local mothership and "
        "need no registry access); the API default, for manifests without the field, "
        "stays k0s for k0smotron compatibility.",
        show_default="kubernetes",
    ),
    version: str | None = typer.Option(
        None, "--version", help="Version to run (default: the operator's, matching the pins)."
    ),
    replicas: int | None = typer.Option(
        None, "--replicas", help="Control-plane pods; more than one needs etcd or a shared kine."
    ),
    storage: Storage | None = typer.Option(
        None,
        "--storage",
        help="Datastore: etcd (managed StatefulSet), kine, nats.",
        show_default="etcd",
    ),
    kine_url: str | None = typer.Option(
        None, "--kine-url", help="kine data source URL (postgres://, mysql://, nats://, sqlite://)."
    ),
    kine_secret: str | None = typer.Option(
        None, "--kine-secret", help="Secret holding the kine URL (implies --storage kine)."
    ),
    datastore: str | None = typer.Option(
        None,
        "--datastore",
        help="Shared DataStore to put the tenant on: the operator makes its own database and "
        "user there (implies --storage kine; with --storage etcd, an etcd DataStore: a key "
        "prefix, user and role of its own; see `kubectl get datastores`).",
    ),
    persistence: Persistence | None = typer.Option(
        None, "--persistence", help="Where the data directory lives.", show_default="emptyDir"
    ),
    persistence_size: str | None = typer.Option(
        None, "--persistence-size", help="Claim size with --persistence pvc (default 1Gi)."
    ),
    storage_class: str | None = typer.Option(
        None, "--storage-class", help="StorageClass of the claims (default: the cluster's)."
    ),
    host_path: str | None = typer.Option(
        None, "--host-path", help="Node directory with --persistence hostPath."
    ),
    service_type: ServiceType | None = typer.Option(
        None, "--service-type", help="Service in front of the API.", show_default="ClusterIP"
    ),
    api_port: int | None = typer.Option(None, "--api-port", help="API port (and node port)."),
    konnectivity_port: int | None = typer.Option(
        None, "--konnectivity-port", help="Konnectivity port (and node port)."
    ),
    external_address: str | None = typer.Option(
        None, "--external-address", help="Address workers use (default: detected)."
    ),
    label: list[str] = typer.Option(None, "-l", "--label", help="Label key=value (repeatable)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the control plane is Available."),
    timeout: float = TimeoutOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the objects; change nothing."),
    force_conflicts: bool = typer.Option(
        False, "--force-conflicts", help="Take over fields another manager owns (SSA force)."
    ),
    output: Output = OutputOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    namespace: str | None = NamespaceOpt,
    debug: bool = DebugOpt,
) -> None:
    """Create a hosted control plane (server-side apply; re-running updates it)."""
    with friendly_errors(debug):
        flags = ClusterFlags(
            distribution=distribution.value if distribution else None,
            version=version,
            replicas=replicas,
            storage=storage.value if storage else None,
            kine_url=kine_url,
            kine_secret=kine_secret,
            datastore=datastore,
            persistence=persistence.value if persistence else None,
            persistence_size=persistence_size,
            storage_class=storage_class,
            host_path=host_path,
            service_type=service_type.value if service_type else None,
            api_port=api_port,
            konnectivity_port=konnectivity_port,
            external_address=external_address,
            labels=_labels(label or []),
        )
        if filename is not None:
            given = [f"--{k.replace('_', '-')}" for k, v in vars(flags).items() if v]
            if given:
                raise InvalidInput(
                    f"{', '.join(given)} cannot be combined with -f; put it in the manifest"
                )
        elif name is None:
            raise InvalidInput("give a cluster NAME, or a manifest with -f FILE")
        elif flags.distribution is None:
            flags.distribution = CLI_DEFAULT_DISTRIBUTION
        # Check the input before choosing a cluster: bad flags fail even with no API around.
        checked = (
            _manifest(filename, name, namespace or "default", namespace is not None)
            if filename is not None
            else cluster_from_flags(str(name), namespace, flags)
        )
        for warning in checked.warnings:
            err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        if dry_run:
            fmt = Output.yaml if output == Output.table else output
            dump(checked.objects[0] if len(checked.objects) == 1 else as_list(checked.objects), fmt)
            return
        if filename is None and not flags.service_type and not flags.external_address:
            err.print(
                "[dim]note: exposed on a ClusterIP Service, which only the mothership's own "
                "nodes reach: workers elsewhere cannot join. For workers, create it with "
                "--service-type NodePort (or LoadBalancer).[/]",
                highlight=False,
                soft_wrap=True,
            )
        target = connect(kubeconfig, context, namespace)
        applied = _apply_all(target, checked, force_conflicts, output == Output.table)
        clusters = [
            (o["metadata"]["namespace"], o["metadata"]["name"])
            for o in applied
            if o.get("kind") == "Cluster" and o.get("apiVersion", "").startswith("k0smotron.io/")
        ]
        if wait:
            for ns, cname in clusters:
                wait_available(target, cname, ns, timeout)
        if output != Output.table:
            final = [objects.get_cluster(target, c, ns) for ns, c in clusters] if wait else applied
            dump(final[0] if len(final) == 1 else as_list(final), output)
        elif clusters and not wait:
            ns, cname = clusters[0]
            flag = "" if ns == target.namespace else f" -n {ns}"
            err.print(
                f"[dim]follow it with `mothership cluster get {cname}{flag}`; "
                f"kubeconfig: `mothership cluster kubeconfig {cname}{flag} --wait`[/]",
                highlight=False,
                soft_wrap=True,
            )


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--label {pair!r}: write key=value")
        out[key] = value
    return out


def _manifest(filename: str, name: str | None, namespace: str, ns_given: bool) -> Checked:
    if filename == "-":
        text, source = sys.stdin.read(), "stdin"
    else:
        path = Path(filename).expanduser()
        if not path.is_file():
            raise InvalidInput(f"-f {filename}: no such file")
        text, source = path.read_text(), str(path)
    checked = load_manifests(text, source, namespace, ns_given)
    if name is not None:
        names = [o["metadata"]["name"] for o in checked.objects if o["kind"] == "Cluster"]
        if name not in names:
            raise InvalidInput(
                f"{source} has no Cluster named {name!r} (it has: {', '.join(names) or 'none'}); "
                "drop NAME or fix the manifest"
            )
    return checked


def _apply_all(target: Target, checked: Checked, force: bool, report: bool) -> list[dict[str, Any]]:
    out = []
    for obj in checked.objects:
        try:
            resource = from_dict(obj)
        except Exception as exc:  # lightkube knows no such kind
            raise InvalidInput(
                f"{obj.get('apiVersion')} {obj.get('kind')} {obj['metadata']['name']}: "
                f"this CLI cannot apply that kind ({exc}); use kubectl for it"
            ) from None
        namespaced = isinstance(resource, NamespacedResource)
        meta = obj["metadata"]
        assert resource.metadata is not None  # the object has metadata (checked on loading)
        if namespaced:
            meta["namespace"] = meta.get("namespace") or target.namespace
            resource.metadata.namespace = meta["namespace"]
        else:
            meta.pop("namespace", None)
            resource.metadata.namespace = None
        ns = meta.get("namespace") if namespaced else None
        existed = _exists(target, type(resource), meta["name"], ns)
        try:
            result = target.client.apply(resource, force=force)
        except http_status_errors() as exc:
            if objects.kind_not_served(exc) and str(obj.get("apiVersion")).startswith("k0smotron"):
                raise objects.no_crds(target, str(obj.get("kind"))) from None
            if status_code(exc) == 409:
                raise InvalidInput(
                    f"{obj['kind']} {meta['name']}: {_status_message(exc)}. Another tool manages "
                    "these fields; change them there, or take them over with --force-conflicts"
                ) from None
            raise
        done = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        out.append(done)
        if report:
            group = str(obj["apiVersion"]).split("/")[0] if "/" in str(obj["apiVersion"]) else ""
            kind = f"{str(obj['kind']).lower()}{'.' + group if group else ''}"
            verb = "configured" if existed else "created"
            where = f" in {ns}" if ns else ""
            console.print(f"{kind}/{meta['name']} {verb}{where}", highlight=False)
    return out


def _exists(target: Target, cls: type, name: str, namespace: str | None) -> bool:
    try:
        if namespace is None:
            target.client.get(cls, name)
        else:
            target.client.get(cls, name, namespace=namespace)
        return True
    except http_status_errors() as exc:
        if status_code(exc) == 404:
            return False
        raise


def wait_available(target: Target, name: str, namespace: str, timeout: float) -> None:
    pod_labels = {"app": "k0smotron", "cluster": name}

    def poll() -> tuple[bool, str]:
        done, phase = clusterview.phase(objects.get_cluster(target, name, namespace))
        if not done:
            pods = target.client.list(Pod, namespace=namespace, labels=pod_labels)
            trouble = clusterview.pod_trouble([p.to_dict() for p in pods])
            if trouble:
                phase = f"{phase} [pods: {trouble}]"
        return done, phase

    progress.wait(
        f"cluster {name}",
        poll,
        timeout,
        hint=f"see `mothership cluster get {name} -n {namespace}` for conditions and events; "
        "no progress at all usually means no operator runs (`mothership dev status`)",
    )
    console.print(f"cluster {name} is Available", highlight=False)


LIST_EPILOG = f"""[bold]Examples[/]

  mothership cluster list
  mothership cluster list -A
  mothership cluster list -o json | jq -r '.items[].metadata.name'

{EXIT_CODES_HELP}"""


@app.command("list", epilog=LIST_EPILOG)
def list_(
    all_namespaces: bool = typer.Option(
        False, "-A", "--all-namespaces", help="Clusters of every namespace."
    ),
    output: Output = OutputOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    namespace: str | None = NamespaceOpt,
    debug: bool = DebugOpt,
) -> None:
    """List Clusters: distribution, version, ready/desired replicas, endpoint, availability."""
    with friendly_errors(debug):
        target = connect(kubeconfig, context, namespace)
        items = objects.list_clusters(target, all_namespaces)
        if output != Output.table:
            dump(as_list(items), output)
            return
        if not items:
            where = "any namespace" if all_namespaces else f"namespace {target.namespace}"
            err.print(f"No clusters in {where}.", highlight=False)
            return
        table = Table(box=None, pad_edge=False, header_style="bold")
        columns = ["NAME", "DISTRIBUTION", "VERSION", "READY", "ENDPOINT", "AVAILABLE", "AGE"]
        if all_namespaces:
            columns.insert(0, "NAMESPACE")
        for col in columns:
            table.add_column(col, no_wrap=True)
        for obj in items:
            meta = obj["metadata"]
            row = [
                meta["name"],
                clusterview.distribution(obj),
                clusterview.version(obj),
                clusterview.replicas(obj),
                clusterview.endpoint(obj),
                clusterview.available_text(obj),
                age(meta.get("creationTimestamp")),
            ]
            if all_namespaces:
                row.insert(0, meta.get("namespace", ""))
            table.add_row(*(escape(c) for c in row))
        _wide().print(table)


GET_EPILOG = f"""[bold]Examples[/]

  mothership cluster get demo
  mothership cluster get demo -n tenants -o yaml

{EXIT_CODES_HELP}"""


@app.command(epilog=GET_EPILOG)
def get(
    name: str = typer.Argument(..., help="Cluster name."),
    output: Output = OutputOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    namespace: str | None = NamespaceOpt,
    debug: bool = DebugOpt,
) -> None:
    """Show one Cluster: its spec in short, its conditions and its recent events."""
    with friendly_errors(debug):
        target = connect(kubeconfig, context, namespace)
        obj = objects.get_cluster(target, name)
        if output != Output.table:
            dump(obj, output)
            return
        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="bold")
        summary.add_column()
        for key, value in clusterview.summary(obj):
            summary.add_row(key, escape(value))
        out = _wide()
        out.print(summary)
        out.print()
        conds = Table(title="Conditions", title_justify="left", box=None, header_style="bold")
        for col in ("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"):
            conds.add_column(col, overflow="fold")
        for c in clusterview.conditions(obj):
            colour = {"True": "green", "False": "red"}.get(str(c.get("status")), "yellow")
            if c.get("type") in ("ControlPlaneScaling", "Deleting"):
                colour = "yellow" if c.get("status") == "True" else "green"
            conds.add_row(
                escape(str(c.get("type"))),
                f"[{colour}]{escape(str(c.get('status')))}[/]",
                escape(str(c.get("reason", ""))),
                age(c.get("lastTransitionTime")),
                escape(str(c.get("message", ""))),
            )
        if not clusterview.conditions(obj):
            out.print("[yellow]No conditions yet: no operator has reconciled it.[/]")
        else:
            out.print(conds)
        pods = target.client.list(
            Pod,
            namespace=obj["metadata"]["namespace"],
            labels={"app": "k0smotron", "cluster": name},
        )
        trouble = clusterview.pod_trouble([p.to_dict() for p in pods])
        if trouble:
            out.print()
            out.print(f"[bold yellow]Pods in trouble:[/] {escape(trouble)}")
        out.print()
        events = objects.events_for(target, obj)
        if not events:
            out.print("[dim]No events.[/]")
            return
        table = Table(title="Events", title_justify="left", box=None, header_style="bold")
        for col in ("TYPE", "REASON", "AGE", "FROM", "MESSAGE"):
            table.add_column(col, overflow="fold")
        for e in events:
            source = e.source.component if e.source and e.source.component else e.reportingComponent
            table.add_row(
                escape(e.type or ""),
                escape(e.reason or ""),
                age(objects.event_time(e)),
                escape(source or ""),
                escape(e.message or ""),
            )
        out.print(table)


DELETE_EPILOG = f"""[bold]Examples[/]

  mothership cluster delete demo
  mothership cluster delete demo --wait          [dim]# until the Cluster and its pods are gone[/]
  mothership cluster delete demo --ignore-not-found

{EXIT_CODES_HELP}"""


@app.command(epilog=DELETE_EPILOG)
def delete(
    name: str = typer.Argument(..., help="Cluster name."),
    wait: bool = typer.Option(
        False, "--wait", help="Wait until it and everything it owns is gone."
    ),
    timeout: float = TimeoutOpt,
    ignore_not_found: bool = typer.Option(
        False, "--ignore-not-found", help="Exit 0 when there is no such Cluster."
    ),
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    namespace: str | None = NamespaceOpt,
    debug: bool = DebugOpt,
) -> None:
    """Delete a Cluster. Claims are kept unless its spec says autoDeletePVCs."""
    with friendly_errors(debug):
        target = connect(kubeconfig, context, namespace)
        ns = target.namespace
        obj = objects.find_cluster(target, name, ns)
        if obj is None:
            if ignore_not_found:
                return
            raise objects.cluster_not_found(name, ns)
        try:
            # Foreground: the Cluster stays until its pods and Services are gone, so --wait
            # ends when everything is, not when only the top object vanished.
            target.client.delete(
                objects.ClusterV2,
                name,
                namespace=ns,
                cascade=CascadeType.FOREGROUND if wait else CascadeType.BACKGROUND,
            )
        except ApiError as exc:
            if exc.status.code != 404:
                raise
        console.print(f"cluster.k0smotron.io/{name} deleted", highlight=False)
        if not wait:
            return
        selector = dict(
            p.split("=", 1)
            for p in ((obj.get("status") or {}).get("selector") or f"cluster={name}").split(",")
            if "=" in p
        )

        def poll() -> tuple[bool, str]:
            current = objects.find_cluster(target, name, ns)
            if current is None:
                return True, "gone"
            pods = len(list(target.client.list(Pod, namespace=ns, labels=selector)))
            return False, f"{clusterview.deletion_phase(current)} ({pods} pods left)"

        progress.wait(
            f"deleting cluster {name}",
            poll,
            timeout,
            hint="a finalizer that never goes usually means no operator runs "
            "(`mothership dev status`)",
        )
        console.print(f"cluster {name} is gone", highlight=False)


ROTATE_EPILOG = f"""[bold]Examples[/]

  mothership cluster rotate-encryption-key demo
  mothership cluster rotate-encryption-key demo --wait --timeout 600

The operator adds a new key for reading, makes it the one written, rewrites the tenant's
Secrets with it and drops the old key; the control plane rolls once per step (with 2
replicas or more it keeps serving). The steps are Events on the Cluster
(`mothership cluster get NAME`). A request made during a rotation waits for it.

{EXIT_CODES_HELP}"""


@app.command("rotate-encryption-key", epilog=ROTATE_EPILOG)
def rotate_encryption_key(
    name: str = typer.Argument(..., help="Cluster name."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the rotation is done."),
    timeout: float = TimeoutOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    namespace: str | None = NamespaceOpt,
    debug: bool = DebugOpt,
) -> None:
    """Rotate the key the tenant's Secrets are encrypted with at rest, without downtime."""
    from datetime import UTC, datetime

    from lightkube.types import PatchType

    from mothership.render import encryption
    from mothership.render import names as object_names

    with friendly_errors(debug):
        target = connect(kubeconfig, context, namespace)
        ns = target.namespace
        objects.get_cluster(target, name, ns)
        secret = object_names.encryption_secret(name)
        if objects.get_secret(target, secret, ns) is None:
            raise InvalidInput(
                f"cluster {name} has no key Secret {ns}/{secret} to rotate: its k0sConfig "
                "names an encryption-provider-config of its own (rotate that yourself), or "
                "no operator has reconciled it yet"
            )
        request = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target.client.patch(
            objects.ClusterV2,
            name,
            {"metadata": {"annotations": {encryption.ROTATE_ANNOTATION: request}}},
            namespace=ns,
            patch_type=PatchType.MERGE,
        )
        console.print(f"cluster {name}: key rotation {request} requested", highlight=False)
        if not wait:
            return

        def poll() -> tuple[bool, str]:
            current = objects.get_secret(target, secret, ns)
            notes = (current.metadata.annotations if current and current.metadata else None) or {}
            if notes.get(encryption.ROTATION_ANNOTATION) != request:
                return False, "waiting for the operator to start it"
            step = notes.get(encryption.STEP_ANNOTATION, "")
            return step == encryption.DONE, f"step: {step}"

        progress.wait(f"key rotation of {name}", poll, timeout)
        console.print(f"cluster {name}: key rotation {request} done", highlight=False)


KUBECONFIG_EPILOG = f"""[bold]Examples[/]

  [dim]# print it[/]
  mothership cluster kubeconfig demo > demo.kubeconfig

  [dim]# write it to a file (mode 0600)[/]
  mothership cluster kubeconfig demo --output-file demo.kubeconfig

  [dim]# merge into ~/.kube/config (or the first $KUBECONFIG file) and switch kubectl to it[/]
  mothership cluster kubeconfig demo --merge && kubectl get namespaces

  [dim]# wait for it while the control plane comes up[/]
  mothership cluster kubeconfig demo --wait --timeout 300

The merged context is called mothership-<namespace>-<name>; the file's previous content is
kept in <file>.mothership.bak. After a merge, mothership commands still talk to the
mothership (they follow the context's origin record), while kubectl talks to the tenant.

{EXIT_CODES_HELP}"""


@app.command("kubeconfig", epilog=KUBECONFIG_EPILOG)
def kubeconfig_(
    name: str = typer.Argument(..., help="Cluster name."),
    merge: bool = typer.Option(False, "--merge", help="Merge into your kubeconfig and switch."),
    merge_into: Path | None = typer.Option(
        None, "--merge-into", help="Merge into this file (implies --merge)."
    ),
    context_name: str | None = typer.Option(
        None, "--context-name", help="Context name (default mothership-<namespace>-<name>)."
    ),
    switch: bool = typer.Option(
        True, "--switch/--no-switch", help="Make the merged context the current one."
    ),
    output_file: Path | None = typer.Option(
        None, "--output-file", help="Write the kubeconfig to this file instead of stdout."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for the kubeconfig to exist."),
    oidc: bool = typer.Option(
        False,
        "--oidc",
        help="A kubeconfig without credentials whose user logs in at the Cluster's identity "
        "provider (spec.kubernetes.authentication) through `mothership oidc-login`.",
    ),
    oidc_issuer: str | None = typer.Option(
        None, "--oidc-issuer", help="With --oidc: which issuer, when the Cluster trusts several."
    ),
    oidc_client_id: str | None = typer.Option(
        None, "--oidc-client-id", help="With --oidc: the client (default: the first audience)."
    ),
    oidc_client_secret: str = typer.Option(
        "", "--oidc-client-secret", help="With --oidc: the client's secret, if it has one."
    ),
    oidc_flow: str = typer.Option(
        "device",
        "--oidc-flow",
        help="With --oidc: how its user logs in: device (a link and a code) or browser (the "
        "code flow with PKCE, for a client registered with http://127.0.0.1/callback).",
    ),
    oidc_listen_port: int = typer.Option(
        0,
        "--oidc-listen-port",
        help="With --oidc-flow browser: a fixed loopback port for the redirect (default any).",
    ),
    timeout: float = TimeoutOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    namespace: str | None = NamespaceOpt,
    debug: bool = DebugOpt,
) -> None:
    """The admin kubeconfig of a Cluster (Secret NAME-kubeconfig), printed, saved or merged;
    with --oidc, one that logs its user in at the Cluster's identity provider instead."""
    with friendly_errors(debug):
        target = connect(kubeconfig, context, namespace)
        ns = target.namespace
        cluster_obj = objects.get_cluster(target, name, ns)  # exit 4 when it does not exist
        settings = None
        if oidc:
            settings = oidc_settings(
                cluster_obj,
                oidc_issuer,
                oidc_client_id,
                oidc_client_secret,
                oidc_flow,
                oidc_listen_port,
            )
        elif (
            oidc_issuer
            or oidc_client_id
            or oidc_client_secret
            or oidc_flow != "device"
            or oidc_listen_port
        ):
            raise InvalidInput(
                "--oidc-issuer, --oidc-client-id, --oidc-client-secret, --oidc-flow and "
                "--oidc-listen-port need --oidc"
            )
        text = _kubeconfig_text(target, name, ns)
        if text is None and wait:

            def poll() -> tuple[bool, str]:
                if _kubeconfig_text(target, name, ns) is not None:
                    return True, "kubeconfig ready"
                return False, _kubeconfig_phase(objects.get_cluster(target, name, ns))

            progress.wait(f"kubeconfig of {name}", poll, timeout)
            text = _kubeconfig_text(target, name, ns)
        if text is None:
            phase = _kubeconfig_phase(objects.get_cluster(target, name, ns))
            raise NotReady(
                f"Cluster {name} has no kubeconfig yet ({phase}); the control plane is not "
                f"ready. Wait for it: `mothership cluster kubeconfig {name} --wait`, or see "
                f"why: `mothership cluster get {name}`"
            )
        if settings is not None:
            ctx = context_name or kubeconfigs.context_name(ns, name)
            text = oidc_kubeconfig(text, ctx, settings)
        if merge or merge_into is not None:
            _merge(target, name, ns, text, merge_into, context_name, switch)
        elif output_file is not None:
            _write_private(output_file.expanduser(), text)
            console.print(
                f"wrote {output_file}; use it: export KUBECONFIG={output_file.expanduser()}",
                highlight=False,
            )
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _status_message(exc: BaseException) -> str:
    """The message of the API server's Status, or the HTTP error when it sent none."""
    status = getattr(exc, "status", None)
    return str(getattr(status, "message", None) or exc)


def _kubeconfig_text(target: Target, name: str, namespace: str) -> str | None:
    secret = objects.get_secret(target, f"{name}-kubeconfig", namespace)
    value = (secret.data or {}).get("value") if secret is not None else None
    if not value:
        return None
    return base64.b64decode(value).decode()


def _kubeconfig_phase(obj: dict[str, object]) -> str:
    cond = clusterview.condition(obj, CONDITION_KUBECONFIG_SECRET_AVAILABLE)
    if cond is None:
        return "no operator has reported on it yet"
    return f"{CONDITION_KUBECONFIG_SECRET_AVAILABLE}={cond.get('status')}: {cond.get('message')}"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _merge(
    target: Target,
    name: str,
    namespace: str,
    text: str,
    into: Path | None,
    context_name: str | None,
    switch: bool,
) -> None:
    path = kubeconfigs.merge_target(into)
    ctx = context_name or kubeconfigs.context_name(namespace, name)
    origin = None
    if target.kubeconfig is not None:
        origin = {
            "kubeconfig": str(target.kubeconfig.resolve()),
            "context": target.context,
            "namespace": namespace,
            "cluster": name,
        }
    tenant = yaml.safe_load(text)
    addition = kubeconfigs.renamed(tenant, ctx, origin)
    base = kubeconfigs.read(path)
    previous = (base or {}).get("current-context")
    merged, replaced = kubeconfigs.merge(base, addition, switch)
    backup = kubeconfigs.write_atomically(path, merged)
    console.print(f"merged context {ctx!r} into {path}", highlight=False)
    if replaced:
        console.print(f"[dim]replaced: {escape(', '.join(replaced))}[/]", highlight=False)
    if backup:
        console.print(f"[dim]previous file kept as {backup}[/]", highlight=False)
    if switch:
        back = f"; back: kubectl config use-context {previous}" if previous else ""
        console.print(f"current context is now {ctx!r}{back}", highlight=False)
    if kubeconfigs.is_local_mothership_kubeconfig(path):
        err.print(
            f"[yellow]note:[/] {path} is the local mothership's kubeconfig; `mothership dev up` "
            "rewrites it, so merge again after a restart (or use --merge-into ~/.kube/config)",
            highlight=False,
        )
