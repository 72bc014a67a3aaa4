"""The images of the monitoring sidecars (`spec.monitoring.enabled`) on the local mothership.

k0smotron names quay.io/k0sproject/prometheus:v2.44.0 and nginx:1.19.10, which cannot be
pulled here. The local mothership runs, under names of its own (operator settings
--monitoring-prometheus-image and --monitoring-proxy-image, so no Cluster's spec changes):

* Prometheus built from its Go module (pins.PROMETHEUS_VERSION);
* Debian's nginx: nginx is C, and the rendered proxy config is nginx's, so the binary of
  Debian's package (unpacked into the cache by `mothership tools install`, never installed:
  the package would start a web server on the host) with the libraries it loads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from mothership.testenv import node_images, paths
from mothership.testenv.gobuild import ToolsError
from mothership.testenv.images import Content
from mothership.testenv.pins import PROMETHEUS_VERSION

PROMETHEUS_IMAGE = f"localhost/mothership/prometheus:{PROMETHEUS_VERSION}"
PROXY_REPOSITORY = "localhost/mothership/nginx"
NGINX_PACKAGE = "nginx"
NGINX_BINARY = "/usr/sbin/nginx"
PROXY_ENTRYPOINT = [NGINX_BINARY, "-g", "daemon off;"]
VERSION_FILE = "version"


class MonitoringImageError(ToolsError):
    """What a monitoring image needs is missing; the message says how to get it."""


def nginx_root() -> Path:
    """Where Debian's nginx package is unpacked (usr/sbin/nginx below it)."""
    return paths.cache_root() / "debian" / NGINX_PACKAGE


def upstream_version(debian_version: str) -> str:
    """nginx's own version in a Debian package version: 1.22.1-9+deb12u12 -> 1.22.1."""
    match = re.match(r"^(?:\d+:)?(\d+(?:\.\d+)+)", debian_version)
    if match is None:
        raise MonitoringImageError(f"not a Debian nginx version: {debian_version!r}")
    return match.group(1)


def fetch_nginx(report: Callable[[str], None]) -> Path:
    """Download and unpack Debian's nginx package once (apt-get download needs no root
    for the package lists the host already has, and installs nothing)."""
    root = nginx_root()
    if (root / NGINX_BINARY.lstrip("/")).is_file() and (root / VERSION_FILE).is_file():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise MonitoringImageError(
            "the monitoring proxy image uses Debian's nginx package: apt-get and dpkg-deb "
            "are needed to fetch it (this host is not Debian)"
        )
    report(f"fetching Debian's {NGINX_PACKAGE} package (the monitoring proxy)")
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            ["apt-get", "download", NGINX_PACKAGE],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        debs = sorted(Path(tmp).glob(f"{NGINX_PACKAGE}_*.deb"))
        if got.returncode != 0 or not debs:
            raise MonitoringImageError(
                f"apt-get download {NGINX_PACKAGE} failed: {got.stderr.strip()[-300:]}; run "
                "`apt-get update` (or `bash scripts/setup-host`) and try again"
            )
        version = subprocess.run(
            ["dpkg-deb", "-f", str(debs[0]), "Version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        staging = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(staging)], check=True)
        (staging / VERSION_FILE).write_text(version + "\n")
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(root))
    return root


def _unpacked_nginx() -> tuple[Path, str]:
    root = nginx_root()
    binary = root / NGINX_BINARY.lstrip("/")
    if not binary.is_file() or not (root / VERSION_FILE).is_file():
        raise MonitoringImageError(
            f"Debian's nginx is not unpacked in {root}: run `mothership tools install`"
        )
    return binary, (root / VERSION_FILE).read_text().strip()


def proxy_image() -> str:
    """`localhost/mothership/nginx:<nginx version>` of the unpacked package."""
    _, version = _unpacked_nginx()
    return f"{PROXY_REPOSITORY}:{upstream_version(version)}"


def proxy_files() -> dict[str, Content]:
    """nginx, the libraries it loads, and the directories its compiled-in paths need (its
    temp dirs below /var/lib/nginx; the master creates them and hands them to the workers,
    which run as nobody)."""
    binary, _ = _unpacked_nginx()
    return {
        NGINX_BINARY: binary,
        **node_images.shared_libraries([binary]),
        "/var/lib/nginx/.keep": b"",
        "/var/log/nginx/.keep": b"",
        "/run/.keep": b"",
    }


def prometheus_files() -> dict[str, Content]:
    """The Prometheus binary on PATH (the sidecar runs `prometheus --config.file=...`); it
    keeps its TSDB in ./data of the working directory."""
    return {"/bin/prometheus": paths.addon("prometheus")}


def images() -> list[tuple[str, dict[str, Content], list[str]]]:
    """(name, files, entrypoint) of both images."""
    return [
        (PROMETHEUS_IMAGE, prometheus_files(), []),
        (proxy_image(), proxy_files(), list(PROXY_ENTRYPOINT)),
    ]
