"""Ignition bootstrap data, applied by real Ignition (built from its module at the pin).

What a Fedora CoreOS or Flatcar machine does at first boot, minus the boot: Ignition's own
validator accepts the config; Ignition's `fetch` and `files` stages write it into a
directory standing for the machine's root (files with their modes, the additional config
merged, the bootstrap unit enabled through a preset); then the bootstrap script the unit
runs is run in that root (busybox as its userland, via chroot): pre-commands, the join,
post-commands, the sentinel, in order, and nothing after a failing command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mothership.api.bootstrap.v1beta2 import SUCCESS_SENTINEL
from mothership.render import worker_ignition
from mothership.render.worker_bootstrap import BootstrapFile
from mothership.testenv import paths

BUSYBOX = Path("/bin/busybox")
LOG = "/var/log/boot.log"


def _tool(name: str) -> Path:
    path = paths.tool(name)
    if not path.exists():
        pytest.fail(f"{path} missing: run `mothership tools install`")
    return path


def _config(pre: list[str]) -> str:
    extra = {
        "ignition": {"version": "3.3.0"},
        "storage": {"files": [{"path": "/etc/extra.conf", "contents": {"source": "data:,merged"}}]},
    }
    return worker_ignition.ignition_config(
        f"#!/bin/sh\necho joined >> {LOG}\n",
        files=[BootstrapFile("/etc/mothership/x.conf", "x=1\n", "0600")],
        pre_commands=pre,
        post_commands=[f"echo post >> {LOG}"],
        additional_config=json.dumps(extra),
    )


def _apply(tmp: Path, config: str) -> Path:
    """Ignition's fetch and files stages, as at first boot, into tmp/root."""
    (tmp / "config.ign").write_text(config)
    root, run = tmp / "root", tmp / "run"
    root.mkdir()
    run.mkdir()
    env = {**os.environ, "IGNITION_CONFIG_FILE": str(tmp / "config.ign")}
    common = ["-platform", "file", "-config-cache", str(run / "ignition.json"),
              "-state-file", str(run / "state"), "-log-to-stdout"]  # fmt: skip
    for stage in (["-stage", "fetch", "-neednet", str(run / "neednet")],
                  ["-stage", "files", "-root", str(root)]):  # fmt: skip
        done = subprocess.run([str(_tool("ignition")), *common, *stage], env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


def _boot(root: Path) -> subprocess.CompletedProcess[str]:
    """Run the bootstrap script as the unit would, in the machine's root."""
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "mkdir", "touch"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "var" / "log").mkdir(parents=True, exist_ok=True)
    script = f"/run/cluster-api/{worker_ignition.RUN_SCRIPT_NAME}"
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run([chroot, str(root), "/bin/sh", script], capture_output=True,
                          text=True, timeout=60, check=False, env={"PATH": "/bin"})  # fmt: skip


def test_ignition_validates_and_writes_the_bootstrap_data(tmp_path: Path) -> None:
    config = _config([f"echo pre >> {LOG}"])
    (tmp_path / "check.ign").write_text(config)
    checked = subprocess.run([str(_tool("ignition-validate")), str(tmp_path / "check.ign")],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
        checked.stdout + checked.stderr
    )
    root = _apply(tmp_path, config)
    user_file = root / "etc/mothership/x.conf"
    assert user_file.read_text() == "x=1\n" and user_file.stat().st_mode & 0o777 == 0o600
    join = root / "run/cluster-api/mothership-join.sh"
    assert join.stat().st_mode & 0o777 == 0o700
    assert (root / "etc/extra.conf").read_text() == "merged"  # the merged additional config
    unit = root / "etc/systemd/system" / worker_ignition.UNIT
    assert "ExecStart=/bin/sh /run/cluster-api/mothership-bootstrap.sh" in unit.read_text()
    presets = (root / "etc/systemd/system-preset/20-ignition.preset").read_text()
    assert f"enable {worker_ignition.UNIT}" in presets.splitlines()

    booted = _boot(root)
    assert booted.returncode == 0, booted.stdout + booted.stderr
    assert (root / LOG.lstrip("/")).read_text().splitlines() == ["pre", "joined", "post"]
    assert (root / SUCCESS_SENTINEL.lstrip("/")).exists()


def test_a_failing_command_stops_the_bootstrap_before_the_join_and_the_sentinel(
    tmp_path: Path,
) -> None:
    root = _apply(tmp_path, _config([f"echo pre >> {LOG}", "exit 3"]))
    booted = _boot(root)
    assert booted.returncode != 0
    assert (root / LOG.lstrip("/")).read_text().splitlines() == ["pre"]
    assert not (root / SUCCESS_SENTINEL.lstrip("/")).exists()
