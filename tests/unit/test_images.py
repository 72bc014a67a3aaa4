"""The OCI archives we write must be valid and reproducible without any container runtime."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from mothership.testenv import images
from mothership.testenv.images import ImageRef, write_oci_archive

NAME = "registry.k8s.io/pause:3.10"


def _blobs(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out: dict[str, bytes] = {}
        for member in tar.getmembers():
            fh = tar.extractfile(member)
            assert fh is not None, member.name
            out[member.name] = fh.read()
        return out


def _blob(blobs: dict[str, bytes], digest: str) -> bytes:
    return blobs["blobs/sha256/" + digest.removeprefix("sha256:")]


def _parts(archive: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], bytes]:
    blobs = _blobs(archive)
    index = json.loads(blobs["index.json"])
    manifest = json.loads(_blob(blobs, index["manifests"][0]["digest"]))
    config = json.loads(_blob(blobs, manifest["config"]["digest"]))
    layer = _blob(blobs, manifest["layers"][0]["digest"])
    return index, manifest, config, layer


def _layer_members(layer: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "host" / "tool"
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF pretend binary\n" * 1000)
    path.chmod(0o700)
    return path


@pytest.fixture
def archive(tmp_path: Path, binary: Path) -> tuple[Path, ImageRef]:
    out = tmp_path / "out" / "image.tar"
    ref = write_oci_archive(
        out,
        name=NAME,
        files={"/pause": binary, "/usr/share/app/data.txt": b"hello\n"},
        entrypoint=["/pause"],
        cmd=["--flag"],
        env={"FOO": "bar"},
        workdir="/work",
        user="65534",
    )
    return out, ref


def test_layout_files_and_media_types(archive: tuple[Path, ImageRef]) -> None:
    path, ref = archive
    blobs = _blobs(path)
    assert json.loads(blobs["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index, manifest, config, _ = _parts(path)
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [desc] = index["manifests"]
    assert desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert desc["digest"] == ref.digest
    assert desc["annotations"] == {
        "io.containerd.image.name": NAME,
        "org.opencontainers.image.ref.name": "3.10",
    }
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [la["mediaType"] for la in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar"
    ]
    assert config["architecture"] == "amd64"
    assert config["os"] == "linux"
    assert ref == ImageRef(name=NAME, digest=desc["digest"])


def test_every_blob_is_named_by_its_digest_and_sized_right(
    archive: tuple[Path, ImageRef],
) -> None:
    path, _ = archive
    blobs = _blobs(path)
    names = [n for n in blobs if n.startswith("blobs/")]
    assert len(names) == 3
    for name in names:
        assert name == "blobs/sha256/" + hashlib.sha256(blobs[name]).hexdigest()
    index, manifest, _, _ = _parts(path)
    descriptors = [index["manifests"][0], manifest["config"], *manifest["layers"]]
    for desc in descriptors:
        assert len(_blob(blobs, desc["digest"])) == desc["size"]


def test_config_describes_the_process_and_the_layer(archive: tuple[Path, ImageRef]) -> None:
    _, manifest, config, layer = _parts(archive[0])
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    assert manifest["layers"][0]["digest"] == layer_digest
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer_digest]}
    proc = config["config"]
    assert proc["Entrypoint"] == ["/pause"]
    assert proc["Cmd"] == ["--flag"]
    assert "FOO=bar" in proc["Env"]
    assert any(e.startswith("PATH=/") for e in proc["Env"])
    assert proc["WorkingDir"] == "/work"
    assert proc["User"] == "65534"


def test_layer_holds_files_dirs_and_a_minimal_userland(
    archive: tuple[Path, ImageRef], binary: Path
) -> None:
    _, _, _, layer = _parts(archive[0])
    members = _layer_members(layer)
    pause = members["pause"]
    assert pause.isreg() and pause.mode == 0o755 and pause.size == binary.stat().st_size
    data = members["usr/share/app/data.txt"]
    assert data.isreg() and data.mode == 0o644
    for d in ("usr", "usr/share", "usr/share/app", "etc"):
        assert members[d].isdir() and members[d].mode == 0o755
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    for member in members.values():
        assert (member.uid, member.gid, member.mtime) == (0, 0, 0)
        assert not member.pax_headers
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        names = [m.name.rstrip("/") for m in tar.getmembers()]

        def text(name: str) -> str:
            fh = tar.extractfile(name)
            assert fh is not None
            return fh.read().decode()

        assert text("pause") == binary.read_text()
        assert text("usr/share/app/data.txt") == "hello\n"
        passwd = text("etc/passwd")
        assert passwd.startswith("root:x:0:0:")
        assert "nobody:x:65534:65534:" in passwd
        assert ":65534:" in text("etc/group")
        assert "hosts: files dns" in text("etc/nsswitch.conf")
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert not any(n.startswith("/") for n in names)


def test_same_inputs_give_the_same_digest(tmp_path: Path, binary: Path) -> None:
    files: dict[str, Path | bytes] = {"/bin/tool": binary, "/a.txt": b"a"}
    one = write_oci_archive(tmp_path / "1.tar", name=NAME, files=files, entrypoint=["/bin/tool"])
    # Different insertion order and a fresh host mtime must not matter.
    binary.touch()
    two = write_oci_archive(
        tmp_path / "2.tar", name=NAME, files=dict(reversed(files.items())), entrypoint=["/bin/tool"]
    )
    assert one == two
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()


def test_different_inputs_give_different_digests(tmp_path: Path) -> None:
    base = write_oci_archive(tmp_path / "a.tar", name=NAME, files={"/x": b"1"})
    other_content = write_oci_archive(tmp_path / "b.tar", name=NAME, files={"/x": b"2"})
    other_entry = write_oci_archive(tmp_path / "c.tar", name=NAME, files={"/x": b"1"}, cmd=["x"])
    assert len({base.digest, other_content.digest, other_entry.digest}) == 3


def test_host_mode_is_normalised(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"p")
    plain.chmod(0o600)
    ref = write_oci_archive(tmp_path / "i.tar", name=NAME, files={"/plain": plain})
    _, _, _, layer = _parts(tmp_path / "i.tar")
    assert _layer_members(layer)["plain"].mode == 0o644
    assert ref.digest.startswith("sha256:")


def test_caller_may_replace_the_default_userland(tmp_path: Path) -> None:
    write_oci_archive(tmp_path / "i.tar", name=NAME, files={"/etc/passwd": b"root:x:0:0::/:\n"})
    _, _, _, layer = _parts(tmp_path / "i.tar")
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        fh = tar.extractfile("etc/passwd")
        assert fh is not None and fh.read() == b"root:x:0:0::/:\n"
        assert [m.name for m in tar.getmembers()].count("etc/passwd") == 1


@pytest.mark.parametrize(
    ("files", "name"),
    [
        ({"relative": b""}, NAME),
        ({"/": b""}, NAME),
        ({"/a/../../b": b""}, NAME),
        ({"/tmp": b""}, NAME),
        ({"/a": b"", "/a/b": b""}, NAME),
        ({"/x": b""}, "registry.k8s.io/pause"),
        ({"/x": b""}, "localhost:5000/pause"),
        ({"/x": b""}, "pause@sha256:" + "0" * 64),
    ],
)
def test_rejects_bad_paths_and_untagged_names(
    tmp_path: Path, files: dict[str, Path | bytes], name: str
) -> None:
    with pytest.raises(ValueError):
        write_oci_archive(tmp_path / "i.tar", name=name, files=files)
    assert not (tmp_path / "i.tar").exists()


def test_failed_write_leaves_no_partial_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_oci_archive(tmp_path / "i.tar", name=NAME, files={"/x": tmp_path / "missing"})
    assert list(tmp_path.iterdir()) == []


def test_large_files_are_streamed_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(8 << 20)
    seen: list[int] = []
    real_write = images._HashingWriter.write

    def spy(self: images._HashingWriter, data: Any) -> int:
        seen.append(len(memoryview(data)))
        return real_write(self, data)

    monkeypatch.setattr(images._HashingWriter, "write", spy)
    write_oci_archive(tmp_path / "i.tar", name=NAME, files={"/big": big})
    assert sum(seen) > 8 << 20
    assert max(seen) < 8 << 20


def test_pause_source_handles_the_signals_it_must() -> None:
    src = images.PAUSE_GO_SOURCE
    assert "package main" in src
    for needle in ("SIGINT", "SIGTERM", "SIGCHLD", "WNOHANG"):
        assert needle in src


def test_build_pause_reports_failures(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="pause"):
        images.build_pause(tmp_path, {"PATH": str(tmp_path / "no-go-here")})
