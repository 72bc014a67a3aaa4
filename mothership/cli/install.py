"""`mothership install` and `mothership uninstall`: the operator in a cluster, like kubectl would.

Top-level commands (not a sub-app), registered with :func:`register`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from mothership.cli import progress
from mothership.cli.connection import ContextOpt, KubeconfigOpt, connect
from mothership.cli.errors import EXIT_CODES_HELP, CliError, InvalidInput, friendly_errors
from mothership.cli.output import Output, dump
from mothership.install import apply, manifests

if TYPE_CHECKING:
    from mothership.testenv.local import LocalMothership

console = Console(stderr=True, soft_wrap=True)
DIGEST_ANNOTATION = "mothership.k0smotron.io/image-digest"

NamespaceOpt = typer.Option(
    manifests.NAMESPACE, "-n", "--namespace", help="Namespace of the operator."
)
DebugOpt = typer.Option(False, "--debug", help="Show stack traces.")


def _report(message: str) -> None:
    console.print(f"[dim]•[/] {message}", highlight=False)


def install(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the objects that would be applied; change nothing."
    ),
    version: str | None = typer.Option(
        None, "--version", help="Operator version (image tag); default: this CLI's version."
    ),
    image: str | None = typer.Option(
        None,
        "--image",
        help="Operator image (repository:tag) from a registry; skips the local image build.",
    ),
    pull_policy: str = typer.Option(
        "IfNotPresent", "--image-pull-policy", help="Always, IfNotPresent or Never."
    ),
    replicas: int = typer.Option(2, "--replicas", help="Operator pods (one leads)."),
    watch_namespace: list[str] = typer.Option(
        None,
        "--watch-namespace",
        help="Reconcile Clusters only in this namespace (repeatable); default: all.",
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug, info or warning."),
    cert_manager: bool = typer.Option(
        False,
        "--cert-manager",
        help="Webhook certificate from cert-manager (installed separately) instead of the "
        "operator's own CA.",
    ),
    kubernetes_image_template: str | None = typer.Option(
        None,
        "--kubernetes-image-template",
        help="Image of `distribution: kubernetes` control planes that name none; {version} "
        "becomes the Cluster's version. Default: upstream images; on the local mothership "
        "its control-plane image. '' forces the upstream images.",
    ),
    default_etcd_image: str | None = typer.Option(
        None,
        "--default-etcd-image",
        help="etcd image of Clusters with storage etcd that name none. Default: the upstream "
        "image; on the local mothership its control-plane image. '' forces the upstream one.",
    ),
    k0s_image_repository: str | None = typer.Option(
        None,
        "--k0s-image-repository",
        help="Repository of the k0s image for Clusters that keep the default "
        "(quay.io/k0sproject/k0s), tag unchanged. Default: that one; on the local mothership "
        "its own k0s build. '' forces the default.",
    ),
    monitoring_prometheus_image: str | None = typer.Option(
        None,
        "--monitoring-prometheus-image",
        help="Prometheus sidecar image of Clusters with monitoring enabled that keep the "
        "default. Default: that one; on the local mothership with a real node its own "
        "Prometheus build. '' forces the default.",
    ),
    monitoring_proxy_image: str | None = typer.Option(
        None,
        "--monitoring-proxy-image",
        help="nginx sidecar image of Clusters with monitoring enabled that keep the default. "
        "Default: that one; on the local mothership with a real node Debian's nginx. '' "
        "forces the default.",
    ),
    node_download_url: str | None = typer.Option(
        None,
        "--node-download-url",
        help="Mirror the join commands download node components from (laid out like "
        "dl.k8s.io and GitHub). Default: upstream; on the local mothership with a real node "
        "its download mirror. '' forces upstream.",
    ),
    node_registry_mirror: str | None = typer.Option(
        None,
        "--node-registry-mirror",
        help="Registry joined nodes pull images through, e.g. http://10.200.0.1:5000. "
        "Default: none; on the local mothership with a real node its registry mirror. "
        "'' forces none.",
    ),
    namespace: str = NamespaceOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    output: Output = typer.Option(
        Output.yaml, "-o", "--output", help="With --dry-run: yaml or json."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the operator serves."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait."),
    debug: bool = DebugOpt,
) -> None:
    """Install (or upgrade) the operator: CRDs, RBAC, webhooks, a 2-replica Deployment.

    The same objects as deploy/install.yaml (`kubectl apply --server-side -f`). Into a
    local mothership with a real node (`mothership dev up`), the operator image is built
    from this checkout and imported into its containerd first, and the operator `dev up`
    runs on the host is stopped: the in-cluster one replaces it; tenant control planes and
    managed etcd default to the local control-plane image there, and join commands to the
    local download and registry mirrors, as with the host operator.

    Examples:
      mothership install
      mothership install --dry-run > install.yaml
      mothership install --image registry.example.com/mothership:0.1.0 --context prod
      mothership install --watch-namespace tenants --replicas 3
    """
    with friendly_errors(debug):
        if image and version:
            raise InvalidInput("--image names the tag already; give --image or --version")
        repository, tag = _split_image(image) if image else (manifests.IMAGE_REPOSITORY, version)
        settings = manifests.Settings(
            namespace=namespace,
            image_repository=repository,
            image_tag=tag or "",
            pull_policy=pull_policy,
            replicas=replicas,
            watch_namespaces=tuple(watch_namespace or ()),
            log_level=log_level,
            cert_manager=cert_manager,
            kubernetes_image_template=kubernetes_image_template or "",
            default_etcd_image=default_etcd_image or "",
            k0s_image_repository=k0s_image_repository or "",
            monitoring_prometheus_image=monitoring_prometheus_image or "",
            monitoring_proxy_image=monitoring_proxy_image or "",
            node_download_url=node_download_url or "",
            node_registry_mirror=node_registry_mirror or "",
        ).check()
        apply.check_namespace(namespace)
        if output == Output.table:
            raise InvalidInput("-o table has no meaning here; use yaml or json")
        if dry_run:
            dump({"apiVersion": "v1", "kind": "List", "items": manifests.objects(settings)}, output)
            return
        started = time.monotonic()
        target = connect(kubeconfig, context, namespace)
        client = target.client
        try:
            apply.refuse_over_clusterctl(client)
        except apply.Refused as exc:
            raise CliError(str(exc)) from None
        annotations = {}
        local = _local(target.server, target.kubeconfig)
        if local is not None:
            settings = _local_tenant_images(
                settings, kubernetes_image_template, default_etcd_image, k0s_image_repository
            )
            settings = _local_node_mirrors(settings, local, node_download_url, node_registry_mirror)
            settings = _local_monitoring_images(
                settings, local, monitoring_prometheus_image, monitoring_proxy_image
            )
        if local is not None and image is None:
            from mothership.install import local as local_ms

            local_ms.stop_host_operator(local, _report)
            if tag and tag != manifests.version():
                _require_local_image(local, settings.image)
            else:
                img = local_ms.load_image(local, _report, tag=tag)
                annotations[DIGEST_ANNOTATION] = img.digest
        objs = apply.with_pod_annotations(apply.objects_to_apply(client, settings), annotations)
        _report(f"installing mothership {settings.image} into {target.where()}")
        apply.apply_all(client, objs, _report)
        if not wait:
            return
        progress.wait("CRDs", apply.crds_established(client), timeout)
        hint = f"see: kubectl -n {namespace} describe pods -l app.kubernetes.io/name=mothership"
        try:
            phase = progress.wait(
                "operator", apply.operator_ready(client, namespace), timeout, hint=hint
            )
        except apply.ImageNotPulled as exc:
            raise CliError(str(exc)) from None
        holder = progress.wait("leader election", apply.leader_elected(client, namespace), timeout)
        if not cert_manager:
            progress.wait("webhook registration", apply.ca_bundle_registered(client), timeout)
        progress.wait("webhooks", apply.webhooks_answering(client, namespace), timeout)
        elapsed = time.monotonic() - started
        console.print(
            f"[green]mothership {settings.image} installed[/] in {namespace}: {phase}, "
            f"{holder}; {elapsed:.0f}s. Next: mothership cluster create demo --wait",
            highlight=False,
        )


def uninstall(
    force: bool = typer.Option(
        False,
        "--force",
        help="Delete every Cluster and JoinTokenRequest first (their control planes and data).",
    ),
    namespace: str = NamespaceOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait."),
    debug: bool = DebugOpt,
) -> None:
    """Remove the operator, its webhooks, RBAC and CRDs; refuses while Clusters exist.

    With --force, every Cluster is deleted first and finalized by the running operator
    (PVCs follow each Cluster's autoDeletePVCs), then the install is removed.

    Examples:
      mothership uninstall
      mothership uninstall --force --timeout 600
    """
    with friendly_errors(debug):
        target = connect(kubeconfig, context, namespace)
        client = target.client
        if not force:
            try:
                apply.refuse_while_clusters(client)
            except apply.Refused as exc:
                raise CliError(str(exc)) from None
        else:
            count = apply.delete_custom_objects(client)
            if count:
                _report(f"deleting {count} Cluster(s) and JoinTokenRequest(s)")
                try:
                    progress.wait("Clusters", apply.custom_objects_gone(client), timeout / 2)
                except CliError:
                    released = apply.release_finalizers(client)
                    _report(f"no operator finalized them; released {len(released)} finalizer(s)")
                    progress.wait("Clusters", apply.custom_objects_gone(client), 60)
        deleted = apply.delete_installed(client, namespace)
        if not deleted:
            console.print(f"nothing to uninstall at {target.where()}")
            return
        _report(f"deleting {len(deleted)} object(s)")
        progress.wait("uninstall", apply.all_gone(client, deleted), timeout)
        left = apply.installed_objects(client)
        if left:
            raise CliError(f"left behind: {', '.join(map(str, left))}")
        console.print(f"[green]mothership uninstalled[/] from {target.where()}", highlight=False)


def local_settings(settings: manifests.Settings, local: LocalMothership) -> manifests.Settings:
    """What the operator needs to run on this local mothership: its tenant images, node
    mirrors and monitoring images (as `mothership install` into it sets them)."""
    settings = _local_tenant_images(settings, None, None, None)
    settings = _local_node_mirrors(settings, local, None, None)
    return _local_monitoring_images(settings, local, None, None)


def _local_tenant_images(
    settings: manifests.Settings,
    template: str | None,
    etcd_image: str | None,
    k0s_repository: str | None,
) -> manifests.Settings:
    """The local mothership pulls nothing: tenant pods default to its control-plane image,
    as they do under the operator `dev up` runs on the host (flags given win, '' too)."""
    from mothership.testenv import localoperator

    if template is None:
        settings = replace(
            settings, kubernetes_image_template=localoperator.KUBERNETES_IMAGE_TEMPLATE
        )
    if etcd_image is None:
        settings = replace(settings, default_etcd_image=localoperator.DEFAULT_ETCD_IMAGE)
    if k0s_repository is None:
        settings = replace(settings, k0s_image_repository=localoperator.K0S_IMAGE_REPOSITORY)
    if template is None or etcd_image is None or k0s_repository is None:
        _report(
            "tenant images on the local mothership: kubernetes "
            f"{settings.kubernetes_image_template or 'upstream'}, etcd "
            f"{settings.default_etcd_image or 'upstream'}, k0s "
            f"{settings.k0s_image_repository or 'upstream'}"
        )
    return settings.check()


def _local_node_mirrors(
    settings: manifests.Settings,
    local: LocalMothership,
    download_url: str | None,
    registry_mirror: str | None,
) -> manifests.Settings:
    """With a real node, join commands default to the local mothership's download and
    registry mirrors, as under the operator `dev up` runs on the host (flags given win, ''
    too); without one there are no mirrors, and nothing changes."""
    from mothership.testenv import localoperator

    local_download, local_registry = localoperator.node_mirrors(local.cfg)
    if not local_download:
        return settings
    if download_url is None:
        settings = replace(settings, node_download_url=local_download)
    if registry_mirror is None:
        settings = replace(settings, node_registry_mirror=local_registry)
    if download_url is None or registry_mirror is None:
        _report(
            "node mirrors on the local mothership: downloads "
            f"{settings.node_download_url or 'upstream'}, registry "
            f"{settings.node_registry_mirror or 'none'}"
        )
    return settings.check()


def _local_monitoring_images(
    settings: manifests.Settings,
    local: LocalMothership,
    prometheus: str | None,
    proxy: str | None,
) -> manifests.Settings:
    """With a real node (whose containerd holds them), the monitoring sidecars default to
    the local mothership's Prometheus and nginx images (flags given win, '' too)."""
    from mothership.testenv import localoperator

    local_prometheus, local_proxy = localoperator.local_monitoring_images(local.cfg)
    if not local_prometheus:
        return settings
    if prometheus is None:
        settings = replace(settings, monitoring_prometheus_image=local_prometheus)
    if proxy is None:
        settings = replace(settings, monitoring_proxy_image=local_proxy)
    return settings.check()


def _split_image(ref: str) -> tuple[str, str]:
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not repository:
        raise InvalidInput(f"--image {ref!r}: give repository:tag, e.g. registry/mothership:0.1.0")
    return repository, tag


def _local(server: str, kubeconfig: Path | None) -> LocalMothership | None:
    from mothership.install import local as local_ms

    return local_ms.find(server, kubeconfig)


def _require_local_image(local: LocalMothership, name: str) -> None:
    from mothership.install import local as local_ms

    if local_ms.digest_in_containerd(local, name) is None:
        raise InvalidInput(
            f"{name} is not in the local mothership's containerd, and only this checkout's "
            f"version ({manifests.version()}) can be built here: drop --version, or install "
            "from a checkout of that version"
        )


def register(app: typer.Typer) -> None:
    """Add `install` and `uninstall` to the top-level command."""
    app.command(epilog=EXIT_CODES_HELP)(install)
    app.command(epilog=EXIT_CODES_HELP)(uninstall)
