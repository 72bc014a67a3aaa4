"""Build the pinned upstream binaries from Go modules into the versioned cache dir.

Runs once per version set: later calls find every binary in place and return at once.
Each binary is built into a temp name, run to prove it is the pinned version, then
renamed into place, so an interrupted build never leaves a half-written binary behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mothership.testenv import gomod, paths
from mothership.testenv.pins import (
    Binary,
    Family,
    addon_families,
    capi_family,
    families,
    k0s_families,
    node_families,
    tenant_families,
    tool_families,
)

MIN_GO = (1, 25)
Report = Callable[[str], None]


class ToolsError(RuntimeError):
    """A build prerequisite is missing or a build failed; the message says what to do."""


@dataclass(frozen=True)
class BuildResult:
    name: str
    path: Path
    built: bool
    seconds: float


def go_proxy() -> str:
    value = os.environ.get("GOPROXY") or _go_env("GOPROXY") or "https://proxy.golang.org"
    first = value.split(",")[0].split("|")[0]
    if first in ("direct", "off"):
        raise ToolsError(
            f"GOPROXY={value} does not name a module proxy; this machine reaches modules only "
            "through one. Unset GOPROXY or set it to https://proxy.golang.org."
        )
    return first.rstrip("/")


def _go_env(key: str) -> str:
    if not shutil.which("go"):
        return ""
    out = subprocess.run(["go", "env", key], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def check_go() -> str:
    """The local Go version, or a ToolsError saying how to get a usable one."""
    if not shutil.which("go"):
        raise ToolsError(
            "Go is not on PATH. The upstream Kubernetes binaries are built from Go modules: "
            f"install Go >= {MIN_GO[0]}.{MIN_GO[1]} (https://go.dev/doc/install or "
            "`apt-get install golang`) and run `mothership tools install` again."
        )
    raw = subprocess.run(
        ["go", "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        major, minor = (int(p) for p in raw.removeprefix("go").split(".")[:2])
    except ValueError as exc:
        raise ToolsError(f"cannot read the Go version from {raw!r}") from exc
    if (major, minor) < MIN_GO:
        raise ToolsError(
            f"Go {raw} is too old: the pinned Kubernetes needs Go >= {MIN_GO[0]}.{MIN_GO[1]}. "
            "Install a newer Go and run `mothership tools install` again."
        )
    return raw


def fetch_mod(proxy: str, module: str, version: str) -> str:
    """The go.mod the proxy serves for module@version."""
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    url = f"{proxy}/{escaped}/@v/{version}.mod"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise ToolsError(
            f"the module proxy has no {module}@{version} ({url}: HTTP {exc.code}). "
            "Check the pin in mothership/testenv/pins.py."
        ) from exc
    except (urllib.error.URLError, TimeoutError) as exc:
        raise ToolsError(
            f"the Go module proxy {proxy} is not reachable ({exc}). The binaries are built "
            "from Go modules fetched through it: check the network or set GOPROXY."
        ) from exc


def build_env() -> dict[str, str]:
    root = paths.go_root()
    env = dict(os.environ)
    flags = env.get("GOFLAGS", "").split()
    flags = [f for f in flags if not f.startswith("-mod=")] + ["-mod=mod"]
    env.update(
        GOTOOLCHAIN="local",
        GOWORK="off",
        GOFLAGS=" ".join(flags),
        GOPATH=str(root),
        GOMODCACHE=str(root / "pkg" / "mod"),
        GOCACHE=str(root / "cache"),
        CGO_ENABLED="0",
    )
    return env


def write_wrapper(family: Family, proxy: str) -> Path:
    upstream = fetch_mod(proxy, family.module, family.version)
    local_go = check_go().removeprefix("go")
    go_version = gomod.parse_go_directive(upstream) or local_go
    replaces = gomod.bump_versions(
        gomod.wrapper_replaces(
            gomod.parse_replaces(upstream), family.sibling_prefix, family.sibling_version
        ),
        gomod.parse_requires(upstream),
        family.version_bumps,
    )
    requires = [(family.module, family.version), *family.extra_requires]
    wdir = paths.build_root() / family.name
    for module, dirname, files in family.local_modules:
        local = wdir / "local" / dirname
        local.mkdir(parents=True, exist_ok=True)
        for fname, content in files:
            if not (local / fname).exists() or (local / fname).read_text() != content:
                (local / fname).write_text(content)
        replaces.append(gomod.Replace(module, "", f"./local/{dirname}", ""))
    text = gomod.render_wrapper(family.name, go_version, requires, replaces)
    wdir.mkdir(parents=True, exist_ok=True)
    gomod_path = wdir / "go.mod"
    if not gomod_path.exists() or _requires_block(gomod_path.read_text()) != _requires_block(text):
        gomod_path.write_text(text)
        (wdir / "go.sum").unlink(missing_ok=True)
    main_go = wdir / "main.go"
    if family.main_source:
        if not main_go.exists() or main_go.read_text() != family.main_source:
            main_go.write_text(family.main_source)
    else:
        main_go.unlink(missing_ok=True)
    return wdir


def _requires_block(text: str) -> str:
    """The parts of a wrapper go.mod we wrote: the first require block and the replaces (go
    mod may append indirect requires)."""
    replaces = (
        text[text.index("\nreplace (") :].split("\n)\n", 1)[0] if "\nreplace (" in text else ""
    )
    return text.split("\n)\n", 1)[0] + replaces


def verify(binary: Binary, path: Path) -> str:
    try:
        out = subprocess.run(
            [str(path), *binary.version_args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolsError(f"{path} does not run: {exc}") from exc
    text = (out.stdout + out.stderr).strip()
    if binary.expect and binary.expect not in text:
        raise ToolsError(
            f"{binary.name} built but reports {text[:200]!r}, expected {binary.expect!r}"
        )
    return text.splitlines()[0] if text else ""


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def plan() -> list[tuple[Path, Family]]:
    """Every family with the dir it is built into: the mothership's, then tenant-only versions."""
    main = paths.bin_dir()
    out = [(main, f) for f in families()]
    out += [(paths.tenant_bin_dir(f.version), f) for f in tenant_families()]
    out += [(paths.tool_bin_dir(f), f) for f in tool_families()]
    out += [(paths.addon_bin_dir(f), f) for f in addon_families()]
    out += [(paths.node_bin_dir(f), f) for f in node_families()]
    out += [(paths.k0s_bin_dir(), f) for f in k0s_families()]
    out.append((paths.capi_bin_dir(), capi_family()))
    return out


def missing() -> list[str]:
    return [str(d / b.name) for d, f in plan() for b in f.binaries if not (d / b.name).exists()]


def install(report: Report = print, only: set[str] | None = None) -> list[BuildResult]:
    """Build every pinned binary that is not in its bin dir yet; idempotent and lock-guarded.

    Each bin dir has its own lock, held only while that dir is built, so a process that
    needs only the mothership's binaries is not held up by a tenant version being built.
    """
    results: list[BuildResult] = []
    groups: dict[Path, list[tuple[Family, Binary]]] = {}
    for bdir, fam in plan():
        for b in fam.binaries:
            if not only or b.name in only:
                groups.setdefault(bdir, []).append((fam, b))
    total = sum(1 for d, items in groups.items() for _, b in items if not (d / b.name).exists())
    done = 0
    proxy = ""
    for bdir, items in groups.items():
        with _locked(bdir):
            todo = [(f, b) for f, b in items if not (bdir / b.name).exists()]
            for _, b in items:
                if (bdir / b.name).exists():
                    results.append(BuildResult(b.name, bdir / b.name, False, 0.0))
            if not todo:
                report(f"all {len(items)} binaries present in {bdir}")
                continue
            if not proxy:
                check_go()
                proxy = go_proxy()
            wrappers: dict[str, Path] = {}
            for family, binary in todo:
                done += 1
                step = f"[{done}/{max(total, done)}]"
                if family.name not in wrappers:
                    wrappers[family.name] = write_wrapper(family, proxy)
                report(f"{step} {binary.name} ({family.module}@{family.version}) building…")
                started = time.monotonic()
                path = _build_one(family, binary, wrappers[family.name], bdir)
                secs = time.monotonic() - started
                _record_build_time(bdir, binary.name, secs)
                report(f"{step} {binary.name} built in {secs:.0f}s: {verify(binary, path)}")
                results.append(BuildResult(binary.name, path, True, secs))
    return results


BUILD_TIMES = ".build-seconds.json"


def _record_build_time(bdir: Path, name: str, seconds: float) -> None:
    """Kept beside the binaries, so `tools list` can say what a rebuild would cost."""
    path = bdir / BUILD_TIMES
    times = build_times(bdir)
    times[name] = round(seconds, 1)
    path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")


def build_times(bdir: Path) -> dict[str, float]:
    """Seconds each binary of a bin dir took to build, for those built since this was kept."""
    try:
        data = json.loads((bdir / BUILD_TIMES).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _build_one(family: Family, binary: Binary, wrapper: Path, bdir: Path) -> Path:
    final = bdir / binary.name
    tmp = bdir / f".{binary.name}.tmp"
    cmd = ["go", "build", "-trimpath", "-o", str(tmp)]
    if family.tags:
        cmd += ["-tags", ",".join(family.tags)]
    cmd += ["-ldflags", " ".join(("-s", "-w", *family.ldflags))]
    cmd.append(binary.package)
    env = build_env()
    if family.cgo:
        env["CGO_ENABLED"] = "1"
    env.update(family.env)
    log = wrapper / f"build-{binary.name}.log"
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=wrapper, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise ToolsError(
            f"building {binary.name} from {family.module}@{family.version} failed "
            f"(exit {proc.returncode}); full log: {log}\n{tail}"
        )
    verify(binary, tmp)
    tmp.rename(final)
    return final
