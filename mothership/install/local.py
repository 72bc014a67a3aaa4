"""Installing into a local mothership (`mothership dev up`): its image and its host operator.

A local mothership pulls nothing, so the operator image is built here and imported into
its containerd. And `dev up` may run the operator on the host: two operators would fight
over the same Clusters and over the webhook registration, so the host one is stopped
(and `dev up` told not to start it again) when the in-cluster one is installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from mothership.install import clusterctl, image, manifests
from mothership.testenv import images, localcapi, localclusterctl, paths, realnode
from mothership.testenv.config import CONFIG_FILE, MothershipConfig
from mothership.testenv.local import LocalMothership
from mothership.testenv.pins import CAPI_VERSION

HOST_OPERATOR = "operator"
CLUSTERCTL_CONFIG = "clusterctl.yaml"
Report = Callable[[str], None]


def find(server: str, kubeconfig: Path | None = None) -> LocalMothership | None:
    """The local mothership whose API server is at ``server``, if one is running.

    Its kubeconfig sits in its state dir, so that is looked at first (test fixtures keep
    theirs in temp dirs); then every state dir under the default root.
    """
    root = paths.state_root()
    candidates = [kubeconfig.parent / CONFIG_FILE] if kubeconfig is not None else []
    if root.is_dir():
        candidates += sorted(root.glob(f"*/{CONFIG_FILE}"))
    for config in candidates:
        if not config.is_file():
            continue
        try:
            cfg = MothershipConfig.load(config.parent)
        except (OSError, ValueError, TypeError):
            continue
        if cfg.ports.get("apiserver") and cfg.api_url.rstrip("/") == server.rstrip("/"):
            ms = LocalMothership(cfg)
            apiserver = ms.sup.get("kube-apiserver")
            if apiserver is not None and apiserver.alive():
                return ms
    return None


def digest_in_containerd(ms: LocalMothership, name: str) -> str | None:
    """The manifest digest containerd has for ``name`` (None: not there)."""
    out = realnode.ctr(ms.cfg, "images", "ls", f"name=={name}", check=False)
    for line in out.stdout.splitlines()[1:]:
        cells = line.split()
        if len(cells) >= 3 and cells[0] == name:
            return next((c for c in cells if c.startswith("sha256:")), None)
    return None


def load_image(ms: LocalMothership, report: Report, tag: str | None = None) -> image.OperatorImage:
    """Build the operator image from this checkout and import it into the node's containerd."""
    if ms.cfg.nodes != "real":
        raise ValueError(
            f"the local mothership {ms.cfg.name!r} has {ms.cfg.nodes} nodes, which run no "
            "containers: the in-cluster operator could not serve its webhooks. Start a real "
            "node (`mothership dev up --nodes real`), or keep the operator on the host"
        )
    img = image.build(report, tag=tag)
    if img.built:
        report(f"image {img.name}: {img.layer_bytes / 2**20:.0f} MiB, {img.digest[:19]}")
    if digest_in_containerd(ms, img.name) == img.digest and images.image_present(
        img.name, address=str(realnode.containerd_socket(ms.cfg))
    ):
        report(f"image {img.name} already in the node's containerd")
        return img
    report(f"importing {img.name} into the node's containerd")
    images.import_image(img.archive, address=str(realnode.containerd_socket(ms.cfg)))
    return img


def stop_host_operator(ms: LocalMothership, report: Report) -> bool:
    """Stop the operator `dev up` runs on the host, and keep `dev up` from restarting it."""
    stopped = ms.sup.stop(HOST_OPERATOR, timeout=30.0)
    if ms.cfg.operator:
        ms.cfg.operator = False
        ms.cfg.save()
    if stopped:
        report("stopped the operator running on the host: the in-cluster one replaces it")
    return stopped


def clusterctl_repository(root: Path, kubectl: Path, settings: manifests.Settings) -> Path:
    """Write a clusterctl repository of Cluster API's core (testenv/localclusterctl.py) and
    mothership's three providers, and a clusterctl config pointing at it; return the config."""
    core_dir = root / localclusterctl.CORE / CAPI_VERSION
    core_dir.mkdir(parents=True, exist_ok=True)
    core = core_dir / "core-components.yaml"
    core.write_text(localclusterctl.core_components(kubectl))
    shutil.copyfile(localcapi.release_dir() / "metadata.yaml", core_dir / "metadata.yaml")
    providers = [{"name": localclusterctl.CORE, "url": core.as_uri(), "type": "CoreProvider"}]
    providers += clusterctl.write_repository(root, settings)
    config = root / CLUSTERCTL_CONFIG
    config.write_text(yaml.safe_dump({"providers": providers}, sort_keys=False))
    return config


def clusterctl_init_args(config: Path) -> list[str]:
    """`clusterctl init` arguments that install all four providers from this repository."""
    p = clusterctl.PROVIDER
    return [
        "init",
        "--config",
        str(config),
        "--core",
        f"{localclusterctl.CORE}:{CAPI_VERSION}",
        "--control-plane",
        f"{p}:{clusterctl.version()}",
        "--bootstrap",
        f"{p}:{clusterctl.version()}",
        "--infrastructure",
        f"{p}:{clusterctl.version()}",
    ]
