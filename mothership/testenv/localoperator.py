"""The operator as a component of the local mothership: `mothership operator run` on the host.

Supervised like the other components (pid file, log in `<state>/logs/operator.log`,
health on its /healthz). The CRDs are applied first, so the operator finds its kinds and
registers its webhooks on them. The webhooks are unregistered when it stops, so a
mothership brought up later without the operator is not left with admission hooks that
point at a port nobody serves (their failurePolicy is Fail).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mothership.testenv import pins
from mothership.testenv.config import MothershipConfig
from mothership.testenv.ports import free_ports

COMPONENT = "operator"
PORT_NAMES = ("operator-metrics", "operator-health", "operator-webhook")
FIELD_MANAGER = "mothership-dev"
# Tenant control planes of the kubernetes distribution run the locally built image.
KUBERNETES_IMAGE_TEMPLATE = f"{pins.CONTROL_PLANE_IMAGE_REPO}:{{version}}"
# Managed etcd runs from the same image: it holds etcd, etcdctl and the shell its scripts
# need (mothership/testenv/userland.py), and the upstream etcd image cannot be pulled here.
DEFAULT_ETCD_IMAGE = pins.local_control_plane_image(pins.KUBERNETES_VERSION)
# k0s Clusters that keep the default image run the locally built k0s (realnode.K0S_IMAGE)
# when their version is the one built here (pins.K0S_VERSION).
K0S_IMAGE_REPOSITORY = pins.K0S_IMAGE_REPO


def prepare(cfg: MothershipConfig) -> None:
    """Ports (added to a config that may predate them) and the operator's own kubeconfig.

    The operator gets a copy of the admin kubeconfig, pinned to the mothership's context:
    users may merge tenant contexts into the state dir's kubeconfig (`mothership cluster
    kubeconfig --merge` after `eval "$(mothership dev env)"`), and a re-login must not follow
    its current-context to a tenant.
    """
    missing = [name for name in PORT_NAMES if name not in cfg.ports]
    if missing:
        cfg.ports.update(free_ports(missing))
        cfg.save()
    path = kubeconfig_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(cfg.kubeconfig.read_bytes())


def kubeconfig_path(cfg: MothershipConfig) -> Path:
    return cfg.state_dir / "operator" / "kubeconfig"


def argv(cfg: MothershipConfig) -> list[str]:
    ports = cfg.ports
    return [
        sys.executable, "-m", "mothership.cli.main", "operator", "run",
        f"--kubeconfig={kubeconfig_path(cfg)}",
        f"--metrics-port={ports['operator-metrics']}",
        f"--health-port={ports['operator-health']}",
        f"--webhook-port={ports['operator-webhook']}",
        f"--webhook-cert-dir={cfg.state_dir / 'operator' / 'webhook'}",
        "--unregister-webhooks-on-exit",
        "--log-format=plain",
        f"--leader-identity=local-{cfg.name}",
        f"--kubernetes-image-template={KUBERNETES_IMAGE_TEMPLATE}",
        f"--default-etcd-image={DEFAULT_ETCD_IMAGE}",
        f"--k0s-image-repository={K0S_IMAGE_REPOSITORY}",
        *node_mirror_args(cfg),
        *monitoring_image_args(cfg),
    ]  # fmt: skip


def node_mirrors(cfg: MothershipConfig) -> tuple[str, str]:
    """The download and registry mirrors join commands use here; empty without a real node."""
    if cfg.nodes != "real":
        return "", ""
    from mothership.testenv import artifacts, registry

    return artifacts.url(cfg), registry.url(cfg)


def local_monitoring_images(cfg: MothershipConfig) -> tuple[str, str]:
    """(Prometheus, nginx) images of the monitoring sidecars: the real node's containerd
    holds them (testenv/monitoring_images.py); empty without a real node."""
    if cfg.nodes != "real":
        return "", ""
    from mothership.testenv import monitoring_images as images

    return images.PROMETHEUS_IMAGE, images.proxy_image()


def monitoring_image_args(cfg: MothershipConfig) -> list[str]:
    prometheus, proxy = local_monitoring_images(cfg)
    if not prometheus:
        return []
    return [f"--monitoring-prometheus-image={prometheus}", f"--monitoring-proxy-image={proxy}"]


def node_mirror_args(cfg: MothershipConfig) -> list[str]:
    """With a real node, join commands use the local download and registry mirrors."""
    download_url, registry_mirror = node_mirrors(cfg)
    if not download_url:
        return []
    return [f"--node-download-url={download_url}", f"--node-registry-mirror={registry_mirror}"]


def health_url(cfg: MothershipConfig) -> str:
    return f"http://127.0.0.1:{cfg.ports['operator-health']}/healthz"


def apply_crds(kubeconfig: Any) -> list[str]:
    """Apply the CRDs generated from the models; return their names.

    Generated rather than read from deploy/crds so an installed package (no repository
    around) works the same. ``spec.conversion`` is left out: the operator owns it (it
    registers its conversion webhook there) and re-applying it here would switch
    conversion off under a running operator.
    """
    from lightkube.codecs import from_dict

    from mothership.api.crdgen import all_crds
    from mothership.testenv import kube

    client = kube.client(kubeconfig, field_manager=FIELD_MANAGER)
    names = []
    for doc in all_crds():
        doc = {**doc, "spec": {k: v for k, v in doc["spec"].items() if k != "conversion"}}
        client.apply(from_dict(doc), force=True)
        names.append(doc["metadata"]["name"])
    return names


def crds_established(kubeconfig: Any, names: list[str]) -> bool:
    """Established and listable (see controllers/crd_ready.py)."""
    from mothership.controllers import crd_ready
    from mothership.testenv import kube

    return not crd_ready.not_ready(kube.client(kubeconfig), names)
