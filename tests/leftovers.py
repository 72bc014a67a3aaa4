"""Find processes that still refer to a mothership's state dir after it was stopped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mothership.testenv import realnode
from mothership.testenv.config import MothershipConfig


def processes_mentioning(state_dir: Path) -> list[str]:
    """Every live process whose command line names the state dir (ours, by construction)."""
    needle = str(state_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {text}")
    return found


def drop_node_images(state_dir: Path) -> None:
    """A stopped test mothership's unpacked images (gigabytes per real node): pytest keeps
    the last sessions' temporary dirs, and a full disk makes kubelets evict. Logs stay."""
    try:
        cfg = MothershipConfig.load(state_dir)
    except FileNotFoundError:
        return
    shutil.rmtree(realnode.node_dir(cfg) / "containerd", ignore_errors=True)
