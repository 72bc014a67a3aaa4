"""The operator image, built on this host without Docker, for the local mothership.

The image is this host's Python (the interpreter ``sys.executable`` runs, its standard
library, the shared libraries ``ldd`` finds for it and for every extension module) plus
the package and its dependencies installed non-editable from a wheel of this checkout
(``pip install --target``, dependency versions pinned to the ones installed here). It is
written with the OCI writer of :mod:`mothership.testenv.images` and imported into the
local node's containerd, where ``imagePullPolicy: IfNotPresent`` finds it.

Everything is compiled ahead (``.pyc`` with unchecked hashes, valid whatever the file
times in the layer) because the operator runs with a read-only root filesystem. Parts of
the standard library a server never imports (tests, Tk, IDLE, 2to3, ensurepip) and the
static libpython are left out, and binaries are stripped, to keep the image small.

For registries, ``Containerfile`` builds the same package on a python slim base.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mothership.install.manifests import IMAGE_REPOSITORY, UID, version
from mothership.testenv import images, paths

Report = Callable[[str], None]

PREFIX = "/usr/local"
LIB_DIR = f"{PREFIX}/lib"
ENTRYPOINT = f"{PREFIX}/bin/mothership"
# Never imported by a server; together most of the standard library's bytes.
STDLIB_SKIP = frozenset(
    {
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "site-packages",
        "venv",
        "__pycache__",
        "__phello__",
    }
)
DYNLOAD_SKIP_PREFIXES = ("_tkinter", "_test", "xx", "_ctypes_test")


class ImageBuildError(RuntimeError):
    """The image could not be built; the message says which step and why."""


@dataclass(frozen=True)
class OperatorImage:
    name: str
    digest: str
    archive: Path
    layer_bytes: int
    built: bool  # False: the archive for these inputs already existed


def image_name(tag: str | None = None) -> str:
    return f"{IMAGE_REPOSITORY}:{tag or version()}"


def source_root() -> Path:
    """The checkout the package runs from (the image is built from its sources)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise ImageBuildError(
            f"no pyproject.toml above {Path(__file__).parent}: the operator image is built "
            "from a source checkout (pip install -e .), not from an installed package; "
            "pass --image to use one from a registry"
        )
    return root


def _sources(root: Path) -> Iterator[Path]:
    yield root / "pyproject.toml"
    yield from sorted((root / "mothership").rglob("*.py"))


def _dependency_pins() -> dict[str, str]:
    """Installed distribution -> version, for every distribution here but mothership."""
    pins = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name and name != "mothership":
            pins[name] = dist.version
    return dict(sorted(pins.items()))


def build_key(root: Path) -> str:
    """What decides the image's bytes: the interpreter, the sources, the pinned versions."""
    h = hashlib.sha256()
    h.update(os.path.realpath(sys.executable).encode())
    h.update(sys.version.encode())
    for path in _sources(root):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    h.update(json.dumps(_dependency_pins()).encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    return paths.cache_root() / "images" / "operator"


def build(report: Report = print, tag: str | None = None) -> OperatorImage:
    """Write the image archive for the current sources (reused when nothing changed)."""
    root = source_root()
    name = image_name(tag)
    key = build_key(root)
    archive = cache_dir() / f"operator-{key}.tar"
    meta_path = archive.with_suffix(".json")
    if archive.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("name") == name:
            return OperatorImage(name, meta["digest"], archive, meta["layer_bytes"], False)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".stage-") as tmp:
        stage = Path(tmp) / "root"
        report("building a wheel of this checkout")
        wheel = _wheel(root, Path(tmp) / "dist")
        site = stage / _rel(_site_packages())
        report("installing it and its dependencies (pinned to this host's versions)")
        _pip_install(wheel, site, Path(tmp))
        report("copying the Python runtime and its shared libraries")
        _copy_runtime(stage)
        _trim_site(site)
        report("compiling to bytecode")
        _compile(stage)
        files = _file_map(stage)
        files[ENTRYPOINT] = _launcher(Path(tmp))
        files.update(_users())
        report(f"writing image {name} ({len(files)} files)")
        ref = images.write_oci_archive(
            archive,
            name=name,
            files=files,
            entrypoint=[ENTRYPOINT],
            env={
                "LD_LIBRARY_PATH": LIB_DIR,
                "PYTHONHOME": PREFIX,
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "HOME": "/tmp",
            },
            user=f"{UID}:{UID}",
        )
    layer = _layer_size(archive)
    meta_path.write_text(json.dumps({"name": name, "digest": ref.digest, "layer_bytes": layer}))
    for old in cache_dir().glob("operator-*.tar"):
        if old != archive:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
    return OperatorImage(name, ref.digest, archive, layer, True)


def _rel(path: str) -> str:
    """A host path of the interpreter's tree, mapped under PREFIX in the image."""
    base = sysconfig.get_config_var("prefix") or sys.base_prefix
    return str(Path(PREFIX) / Path(path).relative_to(base)).lstrip("/")


def _site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


def _run(argv: list[str], what: str, **kw: object) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-20:])
        raise ImageBuildError(f"{what} failed (exit {out.returncode}):\n{tail}")


def _wheel(root: Path, dist: Path) -> Path:
    """A wheel built from a copy of the sources: the build leaves nothing in the checkout."""
    src = dist.parent / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, src / name)
    shutil.copytree(root / "mothership", src / "mothership", ignore=_no_caches)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", str(dist), str(src)],
        "building the wheel (its build backend comes from PyPI or the pip cache)",
    )  # fmt: skip
    (wheel,) = dist.glob("mothership-*.whl")
    return wheel


def _no_caches(_: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


def _pip_install(wheel: Path, target: Path, tmp: Path) -> None:
    constraints = tmp / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in _dependency_pins().items()))
    _run(
        [sys.executable, "-m", "pip", "install", "--target", str(target), "--no-compile",
         "--disable-pip-version-check", "--no-warn-script-location", "-q",
         "-c", str(constraints), str(wheel)],
        "pip install of the wheel and its dependencies (needs PyPI or a warm pip cache)",
    )  # fmt: skip


def _copy_runtime(stage: Path) -> None:
    """Interpreter, standard library (trimmed) and every shared library they load."""
    exe = Path(os.path.realpath(sys.executable))
    bindir = stage / PREFIX.lstrip("/") / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    python = bindir / "python3"
    shutil.copy2(exe, python)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    dest = stage / _rel(str(stdlib))
    shutil.copytree(stdlib, dest, ignore=_stdlib_ignore(stdlib), dirs_exist_ok=True)
    libs = _shared_libraries([exe, *dest.rglob("*.so")], stage)
    libdir = stage / LIB_DIR.lstrip("/")
    for soname, path in libs.items():
        # The loader goes where the executable names it; wheels bring their own libraries.
        if soname.startswith("ld-linux") or path.is_relative_to(stage):
            continue
        shutil.copy2(path, libdir / soname)
    loader = _interpreter(exe)
    target = stage / loader.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(loader), target)
    # Only what comes from this host: wheels ship their binaries as they were tested.
    _strip([python, *libdir.glob("*.so*"), *(dest / "lib-dynload").glob("*.so")])


def _stdlib_ignore(stdlib: Path) -> Callable[[str, list[str]], Iterable[str]]:
    def ignore(directory: str, names: list[str]) -> Iterable[str]:
        skipped = {n for n in names if n in STDLIB_SKIP or n.startswith("config-")}
        skipped |= {n for n in names if n.endswith((".pyc", ".exe"))}
        if Path(directory).name == "lib-dynload":
            skipped |= {n for n in names if n.startswith(DYNLOAD_SKIP_PREFIXES)}
        return skipped

    return ignore


def _shared_libraries(binaries: Iterable[Path], stage: Path) -> dict[str, Path]:
    """soname -> host path for everything these binaries load (ldd, transitively)."""
    found: dict[str, Path] = {}
    missing: set[str] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        for line in out.stdout.splitlines():
            parts = line.split()
            if "=>" in parts:
                soname, target = parts[0], parts[parts.index("=>") + 1]
                if target == "not":
                    missing.add(f"{soname} (for {binary.name})")
                elif target.startswith("/"):
                    found.setdefault(soname, Path(target))
            elif parts and parts[0].startswith("/") and "ld-linux" in parts[0]:
                found.setdefault(Path(parts[0]).name, Path(parts[0]))
    if missing:
        raise ImageBuildError(f"shared libraries not found on this host: {sorted(missing)}")
    return found


def _interpreter(exe: Path) -> str:
    """The dynamic loader the executable names (PT_INTERP)."""
    out = subprocess.run(["readelf", "-l", str(exe)], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if "Requesting program interpreter:" in line:
            return line.split(":", 1)[1].strip().rstrip("]").strip()
    return "/lib64/ld-linux-x86-64.so.2"


def _strip(files: Iterable[Path]) -> None:
    if not shutil.which("strip"):
        return
    for path in files:
        path.chmod(path.stat().st_mode | 0o200)
        subprocess.run(["strip", "--strip-unneeded", str(path)], capture_output=True, check=False)


def _trim_site(site: Path) -> None:
    """Console scripts (they name the host's interpreter) and caches are not needed."""
    shutil.rmtree(site / "bin", ignore_errors=True)
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _compile(stage: Path) -> None:
    """Bytecode for every module, recorded under its path in the image."""
    top = stage / LIB_DIR.lstrip("/")
    _run(
        [sys.executable, "-m", "compileall", "-q", "-j", "2", "--invalidation-mode",
         "unchecked-hash", "-s", str(stage), "-p", "/", str(top)],
        "compiling the bytecode",
    )  # fmt: skip


def _file_map(stage: Path) -> dict[str, Path | bytes]:
    """Image path -> staged file (a symlink's target is copied; the writer follows it)."""
    return {"/" + str(p.relative_to(stage)): p for p in sorted(stage.rglob("*")) if p.is_file()}


def _launcher(tmp: Path) -> Path:
    """`mothership` in the image, as the Containerfile's pip install makes it."""
    path = tmp / "mothership"
    path.write_text(
        f"#!{PREFIX}/bin/python3\n"
        "import sys\n"
        "from mothership.cli.main import main\n"
        "sys.exit(main())\n"
    )
    path.chmod(0o755)
    return path


def _users() -> dict[str, Path | bytes]:
    return {
        "/etc/passwd": (
            b"root:x:0:0:root:/root:/sbin/nologin\n"
            b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
            + f"mothership:x:{UID}:{UID}:mothership:/tmp:/sbin/nologin\n".encode()
        ),
        "/etc/group": f"root:x:0:\nnogroup:x:65534:\nmothership:x:{UID}:\n".encode(),
    }


def _layer_size(archive: Path) -> int:
    """Bytes of the image's one layer (uncompressed), read from its manifest."""
    import tarfile

    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"].removeprefix("sha256:")
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))  # type: ignore[arg-type]
    return int(sum(layer["size"] for layer in manifest["layers"]))
