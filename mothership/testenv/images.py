"""Write OCI images ourselves and load them into containerd, with no registry and no Docker.

The local node pulls nothing: every image a pod needs (the sandbox "pause" image first of
all) is written here as an OCI image-layout archive and imported with Debian's `ctr`
straight into the `k8s.io` namespace, where the kubelet finds it through CRI.

Layers are built byte-for-byte reproducibly so that the same inputs always give the same
digest: an unchanged image then imports as a no-op and a changed one is easy to spot.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

ARCHITECTURE = "amd64"
OS = "linux"
# Images without PATH leave it to the runtime, and CRI and `ctr run` disagree on the default.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_CHUNK = 1 << 20
_NO_ENV: Mapping[str, str] = MappingProxyType({})

# Enough of a userland that `runAsUser: 65534`, name lookups and Go's resolver behave.
_BASE_FILES: dict[str, bytes] = {
    "/etc/passwd": (
        b"root:x:0:0:root:/root:/sbin/nologin\n"
        b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    ),
    "/etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    "/etc/nsswitch.conf": b"hosts: files dns\n",
}
_BASE_DIRS: dict[str, int] = {"/etc": 0o755, "/tmp": 0o1777}


@dataclass(frozen=True)
class Symlink:
    """A symbolic link in the image, pointing at ``target`` (absolute or relative).

    One multi-call binary (busybox) then serves many command names for the size of one.
    """

    target: str


Content = Path | bytes | Symlink


@dataclass(frozen=True)
class ImageRef:
    """What an image was written as: the name to run it by, the digest to pin it by."""

    name: str
    digest: str


class _HashingWriter(io.RawIOBase):
    """Hash and count bytes on their way to disk, so a layer is never read twice or held."""

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__()
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._sink.write(view)
        self._hash.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _json_blob(value: object) -> bytes:
    """Canonical JSON, because the digest of these bytes is the object's identity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size}


def _clean_path(path: str) -> str:
    """Reject paths that would escape or clobber the root, since they would fail only later."""
    if not path.startswith("/"):
        raise ValueError(f"image paths must be absolute, got {path!r}")
    clean = "/" + posixpath.normpath(path).lstrip("/")
    if clean == "/" or ".." in path.split("/"):
        raise ValueError(f"not a usable file path inside an image: {path!r}")
    return clean


def _tar_info(path: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    # Fixed owner, empty names and mtime 0 are what make the layer digest reproducible.
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _host_mode(src: Path) -> int:
    """Normalise host permissions so the digest does not depend on the builder's umask."""
    st = os.stat(src)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{src} is not a regular file")
    return 0o755 if st.st_mode & 0o111 else 0o644


def _layer_entries(files: Mapping[str, Content]) -> list[tuple[str, int, Content | None]]:
    """Every entry of the layer in a stable order: (path, mode, content or None for a dir)."""
    contents: dict[str, Content] = dict(_BASE_FILES)
    for raw, content in files.items():
        contents[_clean_path(raw)] = content
    dirs = dict(_BASE_DIRS)
    for path in contents:
        parent = posixpath.dirname(path)
        while parent != "/":
            dirs.setdefault(parent, 0o755)
            parent = posixpath.dirname(parent)
    clash = sorted(set(dirs) & set(contents))
    if clash:
        raise ValueError(f"paths used both as a file and as a directory: {clash}")
    entries: list[tuple[str, int, Content | None]] = [(d, m, None) for d, m in dirs.items()]
    for path, content in contents.items():
        if isinstance(content, Symlink):
            mode = 0o777
        elif isinstance(content, bytes):
            mode = 0o644
        else:
            mode = _host_mode(content)
        entries.append((path, mode, content))
    # Sorting by components keeps every directory ahead of what it contains.
    entries.sort(key=lambda e: e[0].split("/"))
    return entries


def _write_layer(sink: IO[bytes], files: Mapping[str, Content]) -> tuple[str, int]:
    """Stream the layer tar into sink; returns its digest and size."""
    hashing = _HashingWriter(sink)
    with tarfile.open(fileobj=hashing, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode, content in _layer_entries(files):
            if content is None:
                tar.addfile(_tar_info(path, tarfile.DIRTYPE, mode))
            elif isinstance(content, Symlink):
                info = _tar_info(path, tarfile.SYMTYPE, mode)
                info.linkname = content.target
                tar.addfile(info)
            elif isinstance(content, bytes):
                info = _tar_info(path, tarfile.REGTYPE, mode, len(content))
                tar.addfile(info, io.BytesIO(content))
            else:
                with open(content, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    tar.addfile(_tar_info(path, tarfile.REGTYPE, mode, size), fh)
    return hashing.digest, hashing.size


def _add_blob(tar: tarfile.TarFile, digest: str, size: int, fh: IO[bytes]) -> None:
    info = _tar_info("blobs/sha256/" + digest.removeprefix("sha256:"), tarfile.REGTYPE, 0o644)
    info.size = size
    tar.addfile(info, fh)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tar_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))


def _split_name(name: str) -> str:
    """The tag part of a full reference, which OCI tools expect as the ref.name annotation."""
    if "@" in name:
        raise ValueError(f"image name must be tagged, not pinned by digest: {name!r}")
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag or not repo:
        raise ValueError(f"image name needs an explicit tag (like repo:1.0): {name!r}")
    return tag


def write_oci_archive(
    out: Path,
    *,
    name: str,
    files: Mapping[str, Content],
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = (),
    env: Mapping[str, str] = _NO_ENV,
    workdir: str = "/",
    user: str = "0",
) -> ImageRef:
    """Write a one-layer OCI image-layout tar at `out` that `ctr images import` loads as `name`.

    The archive is written under a temporary name and renamed into place, so a reader never
    sees half an image. Host files are streamed, so large binaries cost disk, not memory.
    """
    tag = _split_name(name)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(env)
    full_env.setdefault("PATH", DEFAULT_PATH)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        layer_path = Path(tmp) / "layer.tar"
        with open(layer_path, "wb") as sink:
            layer_digest, layer_size = _write_layer(sink, files)

        image_config: dict[str, Any] = {"Env": [f"{k}={v}" for k, v in full_env.items()]}
        if entrypoint:
            image_config["Entrypoint"] = list(entrypoint)
        if cmd:
            image_config["Cmd"] = list(cmd)
        image_config["WorkingDir"] = workdir
        image_config["User"] = user
        config = _json_blob(
            {
                "architecture": ARCHITECTURE,
                "os": OS,
                "config": image_config,
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            }
        )
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = _json_blob(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": _descriptor(MEDIA_CONFIG, config_digest, len(config)),
                "layers": [_descriptor(MEDIA_LAYER, layer_digest, layer_size)],
            }
        )
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        manifest_desc = _descriptor(MEDIA_MANIFEST, manifest_digest, len(manifest))
        manifest_desc["platform"] = {"architecture": ARCHITECTURE, "os": OS}
        # containerd names the image from io.containerd.image.name verbatim; without it,
        # `ctr import` would prefix the bare ref.name tag with "import-<date>".
        manifest_desc["annotations"] = {ANNOTATION_IMAGE_NAME: name, ANNOTATION_REF_NAME: tag}
        index = _json_blob(
            {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [manifest_desc]}
        )

        partial = Path(tmp) / "image.tar"
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", _json_blob({"imageLayoutVersion": "1.0.0"}))
            _add_bytes(tar, "index.json", index)
            _add_blob(tar, manifest_digest, len(manifest), io.BytesIO(manifest))
            _add_blob(tar, config_digest, len(config), io.BytesIO(config))
            with open(layer_path, "rb") as layer:
                _add_blob(tar, layer_digest, layer_size, layer)
        os.replace(partial, out)
    return ImageRef(name=name, digest=manifest_digest)


PAUSE_GO_SOURCE = """\
// Command pause is the first process of a pod sandbox. It exists only to hold the pod's
// namespaces open, so it does nothing until told to stop. Because it is PID 1 when the
// pod shares one PID namespace, it also collects orphaned children that exit, which would
// otherwise linger as zombies for the life of the pod.
package main

import (
\t"os"
\t"os/signal"
\t"syscall"
)

func main() {
\tsignals := make(chan os.Signal, 16)
\tsignal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
\t// Children may have exited before the handler was installed.
\treapChildren()
\tfor sig := range signals {
\t\tif sig == syscall.SIGCHLD {
\t\t\treapChildren()
\t\t\tcontinue
\t\t}
\t\tos.Exit(0)
\t}
}

// reapChildren waits for every child that has already exited. SIGCHLD is not queued per
// child, so one signal may stand for several exits: keep waiting until none are left.
func reapChildren() {
\tfor {
\t\tvar status syscall.WaitStatus
\t\tpid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
\t\tif err == syscall.EINTR {
\t\t\tcontinue
\t\t}
\t\tif err != nil || pid <= 0 {
\t\t\treturn
\t\t}
\t}
}
"""


def _write_if_changed(path: Path, text: str) -> None:
    """Leave an unchanged file alone so its mtime keeps the cached binary valid."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def build_pause(out_dir: Path, env: Mapping[str, str]) -> Path:
    """Build our pause binary into out_dir and return its path; a fresh binary is reused."""
    return build_go_command("pause", PAUSE_GO_SOURCE, out_dir, env)


def build_go_command(name: str, source: str, out_dir: Path, env: Mapping[str, str]) -> Path:
    """Build a one-file Go command with no dependencies into out_dir/name; reuse a fresh one.

    For the small programs our images need that no Debian package provides statically.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    main_go = out_dir / "main.go"
    _write_if_changed(out_dir / "go.mod", f"module mothership.local/{name}\n\ngo 1.22\n")
    _write_if_changed(main_go, source)
    binary = out_dir / name
    if binary.exists() and binary.stat().st_mtime > main_go.stat().st_mtime:
        return binary

    build_env = dict(os.environ)
    build_env.update(env)
    flags = [f for f in build_env.get("GOFLAGS", "").split() if not f.startswith("-mod=")]
    build_env.update(
        # The image has no libc, and a go.work or newer toolchain elsewhere must not leak in.
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
        GOWORK="off",
        GOFLAGS=" ".join([*flags, "-mod=mod"]),
    )
    partial = out_dir / f".{name}.partial"
    cmd = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."]
    try:
        result = subprocess.run(
            cmd, cwd=out_dir, env=build_env, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise RuntimeError(f"cannot run `go build` for {name}: {exc}") from exc
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"building {name} failed (exit {result.returncode}):\n{tail}")
    os.replace(partial, binary)
    return binary


def _ctr(
    ctr: str, address: str, namespace: str, args: Sequence[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    cmd = [ctr, "--address", address, "--namespace", namespace, *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"`{' '.join(cmd)}` did not run: {exc}") from exc


def import_image(
    archive: Path,
    *,
    address: str,
    namespace: str = "k8s.io",
    ctr: str = "ctr",
    timeout: float = 600,
) -> None:
    """Import and unpack an archive into containerd.

    Unpacking is kept (ctr's default) because CRI only runs images whose layers are already
    unpacked into its snapshotter; a content-only import would make the kubelet try a pull.
    """
    result = _ctr(ctr, address, namespace, ["images", "import", str(archive)], timeout)
    if result.returncode != 0:
        raise RuntimeError(
            f"ctr could not import {archive} into {namespace} at {address} "
            f"(exit {result.returncode}): {result.stderr.strip()}"
        )


def archive_digest(archive: Path) -> str:
    """The manifest digest of an archive written by write_oci_archive (what `name` points
    at once it is imported), read from its index without unpacking anything."""
    with tarfile.open(archive) as tar:
        fh = tar.extractfile("index.json")
        if fh is None:
            raise ValueError(f"{archive} has no index.json")
        return str(json.load(fh)["manifests"][0]["digest"])


def image_present(
    name: str,
    *,
    address: str,
    namespace: str = "k8s.io",
    ctr: str = "ctr",
    timeout: float = 60,
    digest: str | None = None,
) -> bool:
    """Whether `name` is in containerd with all content present and unpacked (and, when
    `digest` is given, pointing at that manifest: a rebuilt image under the same tag is
    then imported again instead of the old one being kept).

    CRI needs both, so a bare `images ls` is not enough. Nor is `images check --quiet`: in
    containerd 1.6 it lists images that were never unpacked despite what its help says, so the
    full table is read instead (REF TYPE DIGEST STATUS SIZE UNPACKED).
    """
    result = _ctr(ctr, address, namespace, ["images", "check", f"name=={name}"], timeout)
    if result.returncode != 0:
        raise RuntimeError(
            f"ctr could not check images in {namespace} at {address} "
            f"(exit {result.returncode}): {result.stderr.strip()}"
        )
    for line in result.stdout.splitlines()[1:]:
        cells = line.split()
        if len(cells) >= 6 and cells[0] == name:
            if digest is not None and cells[2] != digest:
                return False
            return cells[3] == "complete" and cells[-1] == "true"
    return False
