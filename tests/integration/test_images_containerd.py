"""Our pause image must import into a real containerd 1.6 and run under runc.

A private containerd is started for this module with everything under a temp dir, so the
test never touches (or needs) the system service. Needs root, containerd, ctr, runc and Go.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from mothership.testenv import paths
from mothership.testenv.images import (
    ImageRef,
    build_pause,
    image_present,
    import_image,
    write_oci_archive,
)

_MISSING = [tool for tool in ("containerd", "ctr", "runc", "go") if not shutil.which(tool)]
_SKIP_REASON = (
    f"needs {', '.join(_MISSING)} on PATH (apt-get install containerd runc; Go from go.dev)"
    if _MISSING
    else "needs root to run containerd"
)

pytestmark = [
    pytest.mark.realnode,
    pytest.mark.skipif(bool(_MISSING) or os.geteuid() != 0, reason=_SKIP_REASON),
]

NAMESPACE = "k8s.io"
PAUSE_NAME = "registry.k8s.io/pause:3.10"
T = TypeVar("T")


def _wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30) -> T:
    """Poll until probe returns something truthy; the timeout only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _ctr_cmd(address: str, *args: str) -> list[str]:
    return ["ctr", "--address", address, "--namespace", NAMESPACE, *args]


def _ctr(address: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        _ctr_cmd(address, *args),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _remove_leftovers(address: str) -> None:
    """A task left running would keep its shim and overlay mount alive after containerd."""
    for task in _ctr(address, "tasks", "ls", "-q", check=False).stdout.split():
        _ctr(address, "tasks", "kill", "-s", "SIGKILL", task, check=False)
        _ctr(address, "tasks", "rm", "-f", task, check=False)
    for container in _ctr(address, "containers", "ls", "-q", check=False).stdout.split():
        _ctr(address, "containers", "rm", container, check=False)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private containerd; yields its gRPC socket address."""
    root = tmp_path_factory.mktemp("containerd")
    # Unix socket paths are limited to ~107 bytes, and pytest's basetemp can be deep.
    sockets = Path(tempfile.mkdtemp(prefix="ctd-"))
    address = str(sockets / "containerd.sock")
    config = root / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{root / "root"}"\n'
        f'state = "{root / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{address}"\n'
        "[ttrpc]\n"
        f'  address = "{address}.ttrpc"\n'
        "[debug]\n"
        f'  address = "{sockets / "debug.sock"}"\n'
        '[plugins."io.containerd.internal.v1.opt"]\n'
        f'  path = "{root / "opt"}"\n'
    )
    log = root / "containerd.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            ["containerd", "--config", str(config)],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:

        def serving() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"containerd exited with {proc.returncode}; log tail:\n{_tail(log)}"
                )
            return _ctr(address, "version", check=False).returncode == 0

        _wait_for("containerd to serve its socket", serving)
        yield address
    finally:
        try:
            if proc.poll() is None:
                _remove_leftovers(address)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
            shutil.rmtree(sockets, ignore_errors=True)


@pytest.fixture(scope="module")
def pause_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = paths.go_root()
    env = {
        "GOPATH": str(go),
        "GOMODCACHE": str(go / "pkg" / "mod"),
        "GOCACHE": str(go / "cache"),
    }
    return build_pause(tmp_path_factory.mktemp("pause"), env)


@pytest.fixture(scope="module")
def pause_image(
    tmp_path_factory: pytest.TempPathFactory, pause_binary: Path
) -> tuple[Path, ImageRef]:
    archive = tmp_path_factory.mktemp("images") / "pause.tar"
    ref = write_oci_archive(
        archive, name=PAUSE_NAME, files={"/pause": pause_binary}, entrypoint=["/pause"]
    )
    return archive, ref


def test_build_pause_reuses_a_fresh_binary(pause_binary: Path) -> None:
    before = pause_binary.stat().st_mtime_ns
    assert build_pause(pause_binary.parent, {}) == pause_binary
    assert pause_binary.stat().st_mtime_ns == before
    with open(pause_binary, "rb") as fh:
        assert fh.read(4) == b"\x7fELF"


def test_import_makes_the_image_present(
    containerd: str, pause_image: tuple[Path, ImageRef]
) -> None:
    archive, ref = pause_image
    assert not image_present(ref.name, address=containerd)
    import_image(archive, address=containerd)
    assert image_present(ref.name, address=containerd)
    listed = _ctr(containerd, "images", "ls").stdout
    assert ref.digest in listed
    # Importing again must be harmless: the node setup re-runs on every start.
    import_image(archive, address=containerd)
    assert image_present(ref.name, address=containerd)


def test_import_failure_raises_with_ctr_stderr(containerd: str, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"not a tar")
    with pytest.raises(RuntimeError, match="ctr could not import"):
        import_image(bogus, address=containerd)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may hold spaces; the fields after its closing paren do not.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def _task_pid(address: str, container_id: str) -> int | None:
    for line in _ctr(address, "tasks", "ls").stdout.splitlines()[1:]:
        cells = line.split()
        if cells[:1] == [container_id] and cells[-1] == "RUNNING":
            return int(cells[1])
    return None


def test_pause_runs_as_nobody_and_exits_zero_on_sigterm(
    containerd: str, pause_binary: Path, tmp_path: Path
) -> None:
    # `ctr run --rm` cannot be combined with --detach; a foreground run exits with the task's
    # status, which is exactly what the test wants to see.
    ref = write_oci_archive(
        tmp_path / "run.tar",
        name="mothership.local/pause-run:test",
        files={"/pause": pause_binary},
        entrypoint=["/pause"],
        user="65534",
    )
    import_image(tmp_path / "run.tar", address=containerd)
    assert image_present(ref.name, address=containerd)
    # Unique, because runc's state dir (/run/containerd/runc/<ns>) is shared by every
    # containerd on the host, whatever its own state dir.
    container_id = f"ms-pause-{uuid.uuid4().hex[:12]}"
    run = subprocess.Popen(
        _ctr_cmd(containerd, "run", "--rm", "--null-io", ref.name, container_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def running() -> int | None:
            if run.poll() is not None:
                raise AssertionError(f"ctr run exited {run.returncode}: {run.communicate()}")
            return _task_pid(containerd, container_id)

        pid = _wait_for("the pause task to run", running)
        with open(f"/proc/{pid}/status") as fh:
            uids = next(line for line in fh if line.startswith("Uid:")).split()[1:]
        assert uids[0] == "65534"
        _ctr(containerd, "tasks", "kill", "--signal", "SIGTERM", container_id)
        assert run.wait(timeout=30) == 0, run.communicate()
        assert container_id not in _ctr(containerd, "containers", "ls", "-q").stdout.split()
    finally:
        if run.poll() is None:
            _ctr(containerd, "tasks", "kill", "-s", "SIGKILL", container_id, check=False)
            run.wait(timeout=30)


@pytest.mark.skipif(
    not (shutil.which("unshare") and shutil.which("nsenter")), reason="needs util-linux"
)
def test_pause_reaps_orphans_as_pid_one(pause_binary: Path) -> None:
    # As PID 1 of a PID namespace pause inherits every orphan there; a zombie would linger.
    init = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", str(pause_binary)])
    try:
        pause_pid = _wait_for("pause to start in its namespace", lambda: _children(init.pid))[0]
        orphan_maker = ["sh", "-c", "(sleep 1 &); exit 0"]
        nsenter = ["nsenter", "--target", str(pause_pid), "--pid", "--", *orphan_maker]
        subprocess.run(nsenter, check=True, timeout=30)
        assert _children(pause_pid), "the orphan was not handed to pause"
        _wait_for("pause to reap its orphan", lambda: not _children(pause_pid), timeout=20)
        os.kill(pause_pid, signal.SIGTERM)
        assert init.wait(timeout=30) == 0
    finally:
        if init.poll() is None:
            init.kill()
            init.wait(timeout=30)


def test_control_plane_shell_runs_what_the_etcd_scripts_use(
    containerd: str, tmp_path: Path
) -> None:
    """busybox, the /bin/bash stand-in and getent, in an image like the control-plane one:
    the script is started the way render/etcd.py starts its scripts (bash -c SCRIPT NAME ARGS)."""
    from mothership.testenv import gobuild, userland

    try:
        files = userland.files(paths.build_root() / "userland", gobuild.build_env())
    except userland.UserlandMissing as exc:
        pytest.skip(str(exc))
    ref = write_oci_archive(tmp_path / "shell.tar", name="mothership.local/shell:test", files=files)
    import_image(tmp_path / "shell.tar", address=containerd)
    script = (
        "set -eu\n"
        'echo "name=$0 args=$*"\n'
        "echo 'id1, started, m-0, https://peer:2380' |"
        " awk -F', ' -v me=m-0 '$3 == me { print \"id=\" $1 }'\n"
        "touch /tmp/marker && [ -f /tmp/marker ] && echo touched\n"
        "sleep 0.1\n"
        "getent hosts 10.1.2.3\n"
        'if getent hosts no-such-name.invalid; then echo resolved; else echo "getent=$?"; fi\n'
    )
    container_id = f"ms-shell-{uuid.uuid4().hex[:12]}"
    run = subprocess.run(
        _ctr_cmd(
            containerd, "run", "--rm", ref.name, container_id,
            "/bin/bash", "-c", script, "etcd", "--flag=1",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    assert run.stdout.splitlines() == [
        "name=etcd args=--flag=1",
        "id=id1",
        "touched",
        "10.1.2.3 10.1.2.3",
        "getent=2",
    ]
