"""The local mothership's registry mirror: CNCF distribution, holding what workers pull.

Machines have no internet registry, as at an air-gapped site; their containerd is told to
use this registry as a mirror of registry.k8s.io, docker.io, quay.io and ghcr.io (the
join command's `--registry-mirror`). It listens on the real node's address, which every
machine reaches through its LAN's gateway, and keeps its storage in the state dir.

Images are written as OCI archives (images.py) and pushed here over the registry HTTP
API (blobs first, then the manifest under its tag), skipping what the registry already
has, so a warm start pushes nothing.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from mothership.testenv import paths
from mothership.testenv.config import MothershipConfig

PORT = 5000
COMPONENT = "registry"
MIRRORED_REGISTRIES = ("registry.k8s.io", "docker.io", "quay.io", "ghcr.io")
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class RegistryError(RuntimeError):
    """The registry refused or failed a push; the message names the image and the answer."""


def address(cfg: MothershipConfig) -> str:
    return f"{cfg.node_ip}:{PORT}"


def url(cfg: MothershipConfig) -> str:
    return f"http://{address(cfg)}"


def storage_dir(cfg: MothershipConfig) -> Path:
    return cfg.state_dir / "registry"


def config(cfg: MothershipConfig) -> str:
    conf = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir(cfg))},
            "delete": {"enabled": True},
        },
        "http": {"addr": address(cfg)},
        "health": {"storagedriver": {"enabled": False}},
    }
    return yaml.safe_dump(conf, sort_keys=False)


def argv(cfg: MothershipConfig) -> list[str]:
    path = cfg.state_dir / "registry.yaml"
    path.write_text(config(cfg))
    storage_dir(cfg).mkdir(parents=True, exist_ok=True)
    return [str(paths.addon("registry")), "serve", str(path)]


def healthy(cfg: MothershipConfig, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url(cfg)}/v2/", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def repository_and_tag(name: str) -> tuple[str, str]:
    """`registry.k8s.io/coredns/coredns:v1.14.7` -> (`coredns/coredns`, `v1.14.7`): the path a
    mirror is asked for does not carry the upstream registry's host."""
    rest, _, tag = name.rpartition(":")
    if not rest or "/" in tag:
        raise ValueError(f"image name {name!r} has no tag")
    host, _, repo = rest.partition("/")
    if "." not in host and ":" not in host and host != "localhost":
        repo = rest  # no registry host: docker.io/library style short names
    if host == "docker.io" and "/" not in repo:
        repo = f"library/{repo}"
    return repo, tag


def _blobs(archive: Path) -> tuple[dict[str, tarfile.TarInfo], dict[str, Any]]:
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        index = json.load(_extract(tar, members["index.json"]))
    return members, index


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    fh = tar.extractfile(member)
    if fh is None:
        raise RegistryError(f"{member.name} is not a file in the archive")
    return fh


def push_archive(archive: Path, name: str, client: httpx.Client) -> bool:
    """Push one OCI archive as `name`; False when the registry had it already."""
    repo, tag = repository_and_tag(name)
    members, index = _blobs(archive)
    manifest_desc = index["manifests"][0]
    digest = manifest_desc["digest"]
    head = client.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MEDIA_MANIFEST})
    if head.status_code == 200 and head.headers.get("Docker-Content-Digest") == digest:
        return False
    with tarfile.open(archive) as tar:
        manifest_bytes = _extract(tar, members[_blob_path(digest)]).read()
        manifest = json.loads(manifest_bytes)
        for desc in [manifest["config"], *manifest["layers"]]:
            blob = desc["digest"]
            if client.head(f"/v2/{repo}/blobs/{blob}").status_code == 200:
                continue
            start = client.post(f"/v2/{repo}/blobs/uploads/")
            _check(start, name, "start an upload")
            location = start.headers["Location"]
            sep = "&" if "?" in location else "?"
            data = _extract(tar, members[_blob_path(blob)])
            put = client.put(
                f"{location}{sep}digest={blob}",
                content=_chunks(data),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(desc["size"]),
                },
            )
            _check(put, name, f"upload blob {blob}")
    put = client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=manifest_bytes,
        headers={"Content-Type": MEDIA_MANIFEST},
    )
    _check(put, name, "store the manifest")
    if hashlib.sha256(manifest_bytes).hexdigest() != digest.split(":", 1)[1]:
        raise RegistryError(f"{name}: the archive's manifest does not match its index")
    return True


def _chunks(fh: IO[bytes], size: int = 1 << 20) -> Any:
    while chunk := fh.read(size):
        yield chunk


def _blob_path(digest: str) -> str:
    algo, hexdigest = digest.split(":", 1)
    return f"blobs/{algo}/{hexdigest}"


def _check(resp: httpx.Response, name: str, what: str) -> None:
    if resp.status_code >= 300:
        raise RegistryError(
            f"pushing {name}: the registry at {resp.request.url.host}:{PORT} refused to {what} "
            f"(HTTP {resp.status_code}: {resp.text[:300]})"
        )


def push_all(
    cfg: MothershipConfig, images: list[tuple[str, Path]], report: Callable[[str], None]
) -> int:
    """Push (name, archive) pairs; returns how many were new to the registry."""
    pushed = 0
    with httpx.Client(base_url=url(cfg), timeout=120.0) as client:
        for name, archive in images:
            if push_archive(archive, name, client):
                report(f"pushed {name} to the registry mirror")
                pushed += 1
    return pushed
