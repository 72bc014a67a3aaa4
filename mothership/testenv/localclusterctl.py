"""A clusterctl repository for the local mothership: Cluster API's core and mothership's providers.

`clusterctl init` installs providers from a repository and pulls their images; the local
mothership pulls nothing. So the repository is written here, from what is built here:

- Cluster API's core provider from the pinned release's own kustomize config (what its
  release's core-components.yaml is made from), built with the pinned kubectl, its
  controller image replaced by a local one holding the manager built from the same
  release (``localhost/mothership/cluster-api-controller``, imported into the node's
  containerd) and pulled only if absent;
- mothership's three providers (mothership/install/clusterctl.py) with the settings the
  local mothership's operator needs (local tenant images, node mirrors); the two are put
  together by mothership/install/local.py.

Nothing in it is faked: clusterctl reads it as it would read GitHub releases, and what
it installs runs as pods, with certificates from the local cert-manager.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mothership.testenv import images, localcapi, realnode
from mothership.testenv.config import MothershipConfig
from mothership.testenv.pins import CAPI_VERSION

CORE = "cluster-api"
CORE_IMAGE = f"localhost/mothership/cluster-api-controller:{CAPI_VERSION}"
CORE_MANAGER = "/manager"  # the command upstream's Deployment runs

Report = Callable[[str], None]


class RepositoryError(RuntimeError):
    """The repository cannot be written; the message says why."""


def core_components_from(
    docs: list[dict[str, Any]], image: str = CORE_IMAGE
) -> list[dict[str, Any]]:
    """Upstream's core objects with the manager's image ours, pulled only when absent."""
    out = []
    found = False
    for doc in docs:
        if doc.get("kind") == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container.get("name") == "manager":
                    container["image"] = image
                    container["imagePullPolicy"] = "IfNotPresent"
                    found = True
        out.append(doc)
    if not found:
        raise RepositoryError("Cluster API's core config has no Deployment with a manager")
    return out


def core_components(kubectl: Path) -> str:
    """The core provider's components, built from the release's config/default."""
    localcapi.check_installed()
    config = localcapi.release_dir() / "config" / "default"
    done = subprocess.run(
        [str(kubectl), "kustomize", str(config)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RepositoryError(f"kubectl kustomize {config}: {done.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    return yaml.safe_dump_all(core_components_from(docs), sort_keys=False)


def import_core_image(cfg: MothershipConfig, report: Report) -> None:
    """The core controller image, written once and imported into the node's containerd."""
    files: dict[str, images.Content] = {CORE_MANAGER: localcapi.manager_binary()}
    archive = realnode.ensure_archive(CORE_IMAGE, files, [CORE_MANAGER], report)
    address = str(realnode.containerd_socket(cfg))
    if not images.image_present(CORE_IMAGE, address=address, digest=images.archive_digest(archive)):
        report(f"importing image {CORE_IMAGE}")
        images.import_image(archive, address=address)
