"""cert-manager as a component of the local mothership (`mothership dev up --cert-manager`).

What clusterctl installs (Cluster API's core provider, and any provider released the
usual way) asks cert-manager for its webhook certificates and for the CA bundles of its
CRD conversions and webhook configurations. So the local mothership runs cert-manager for
real: its controllers and CA injector built from the pinned release
(testenv/certmanager_main.py), as a supervised process beside the API server like the
operator, with the release's CRDs applied first. clusterctl finds it installed and does
not try to download one.
"""

from __future__ import annotations

from pathlib import Path

from mothership.testenv import paths
from mothership.testenv.config import MothershipConfig
from mothership.testenv.pins import CERT_MANAGER_VERSION, cert_manager_family
from mothership.testenv.ports import free_ports

COMPONENT = "cert-manager"
PORT_NAMES = ("cert-manager-health",)
FIELD_MANAGER = "mothership-dev-cert-manager"
# Where cert-manager keeps the Secrets of ClusterIssuers; clusterctl also looks for it.
NAMESPACE = "cert-manager"


class CertManagerError(RuntimeError):
    """cert-manager cannot be run here; the message says what is missing."""


def binary() -> Path:
    return paths.addon_bin_dir(cert_manager_family()) / "cert-manager"


def crd_dir() -> Path:
    """The release's CRDs, in the module `mothership tools install` downloaded."""
    module = cert_manager_family().module
    return paths.go_root() / "pkg" / "mod" / f"{module}@{CERT_MANAGER_VERSION}" / "deploy" / "crds"


def check_installed() -> None:
    missing = [p for p in (binary(), crd_dir()) if not p.exists()]
    if missing:
        raise CertManagerError(
            f"cert-manager {CERT_MANAGER_VERSION} is not built here "
            f"({', '.join(map(str, missing))} missing); run `mothership tools install`"
        )


def health_url(cfg: MothershipConfig) -> str:
    return f"http://127.0.0.1:{cfg.ports['cert-manager-health']}/readyz"


def prepare(cfg: MothershipConfig) -> None:
    missing = [name for name in PORT_NAMES if name not in cfg.ports]
    if missing:
        cfg.ports.update(free_ports(missing))
        cfg.save()


def argv(cfg: MothershipConfig) -> list[str]:
    return [
        str(binary()),
        f"--kubeconfig={cfg.kubeconfig}",
        f"--cluster-resource-namespace={NAMESPACE}",
        f"--health-addr=127.0.0.1:{cfg.ports['cert-manager-health']}",
    ]


def register(cfg: MothershipConfig) -> list[str]:
    """Apply the release's CRDs and the namespace; return the CRD names."""
    import yaml
    from lightkube.codecs import from_dict
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    from mothership.testenv import kube

    client = kube.client(cfg.kubeconfig, field_manager=FIELD_MANAGER)
    names = []
    for path in sorted(crd_dir().glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                client.apply(from_dict(doc), force=True)
                names.append(doc["metadata"]["name"])
    if not names:
        raise CertManagerError(f"no CRDs in {crd_dir()}")
    client.apply(Namespace(metadata=ObjectMeta(name=NAMESPACE)), force=True)
    return names
