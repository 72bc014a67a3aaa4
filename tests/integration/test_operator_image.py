"""The locally built operator image: its config, its size, and that it runs as written.

The layer is unpacked and its entrypoint run in a chroot as the image's user with the
image's environment, which is what the container runtime does minus the namespaces: a
missing shared library, a module left out of the trimmed standard library or bytecode the
read-only filesystem would want to rewrite shows up here, in seconds, without a node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from mothership.install import image, manifests

REPO = Path(__file__).resolve().parents[2]
MAX_LAYER_MIB = 160


@pytest.fixture(scope="module")
def built() -> image.OperatorImage:
    return image.build(lambda _: None)


def _blob(tar: tarfile.TarFile, digest: str) -> Any:
    member = tar.extractfile("blobs/sha256/" + digest.removeprefix("sha256:"))
    assert member is not None
    return member


@pytest.fixture(scope="module")
def unpacked(
    built: image.OperatorImage, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("image") / "root"
    with tarfile.open(built.archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = json.load(_blob(tar, index["manifests"][0]["digest"]))
        config = json.load(_blob(tar, manifest["config"]["digest"]))
        (layer,) = manifest["layers"]
        with tarfile.open(fileobj=_blob(tar, layer["digest"])) as fs:
            fs.extractall(root, filter="tar")
    return root, config


def test_image_config(built: image.OperatorImage, unpacked: tuple[Path, dict[str, Any]]) -> None:
    _, config = unpacked
    cfg = config["config"]
    assert built.name == f"{manifests.IMAGE_REPOSITORY}:{manifests.version()}"
    assert cfg["User"] == f"{manifests.UID}:{manifests.UID}"
    assert cfg["Entrypoint"] == [image.ENTRYPOINT]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    size = built.layer_bytes / 2**20
    print(f"\noperator image {built.name}: one layer of {size:.0f} MiB")
    assert size < MAX_LAYER_MIB


def test_nothing_from_the_build_host_leaks_in(unpacked: tuple[Path, dict[str, Any]]) -> None:
    root, _ = unpacked
    assert not (root / "root").exists(), "paths of the host's interpreter tree in the image"
    stdlib = next((root / "usr/local/lib").glob("python3.*"))
    for skipped in ("test", "idlelib", "tkinter", "ensurepip"):
        assert not (stdlib / skipped).exists()
    assert not list(stdlib.glob("config-*")), "the static libpython belongs to builds only"
    assert (stdlib / "site-packages/mothership/cli/main.py").is_file()
    assert not (stdlib / "site-packages/mothership.egg-link").exists()
    # Every module ships its bytecode: a read-only root cannot cache it at run time.
    assert (stdlib / "site-packages/mothership/cli/__pycache__").is_dir()


def test_entrypoint_runs_as_the_image_user(unpacked: tuple[Path, dict[str, Any]]) -> None:
    if os.geteuid() != 0 or not shutil.which("chroot"):
        pytest.skip("needs root and chroot to run the image's files")
    root, config = unpacked
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    user = config["config"]["User"]
    code = (
        "import kopf, lightkube, pydantic, cryptography, aiohttp, yaml, ssl, ctypes;"
        "import mothership.controllers.operator, mothership.webhooks.runtime;"
        "from importlib import metadata;"
        "ctypes.CDLL('libc.so.6');"
        "print(metadata.version('mothership'), yaml.__with_libyaml__)"
    )
    python = f"{image.PREFIX}/bin/python3"
    run = subprocess.run(
        ["chroot", f"--userspec={user}", str(root), python, "-c", code],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [manifests.version(), "True"]
    help_out = subprocess.run(
        ["chroot", f"--userspec={user}", str(root), *config["config"]["Entrypoint"],
         "operator", "run", "--help"],
        env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert help_out.returncode == 0, help_out.stderr
    assert "--webhook-registration" in help_out.stdout


def test_containerfile_matches_the_local_image() -> None:
    text = (REPO / "Containerfile").read_text()
    assert f"USER {manifests.UID}:{manifests.UID}" in text
    assert 'ENTRYPOINT ["mothership"]' in text
    assert image.ENTRYPOINT.endswith("/mothership")
