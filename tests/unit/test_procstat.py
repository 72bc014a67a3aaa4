"""What the benches read from /proc: a process's own figures and its children's apart
(the operator's webhook server is a child process: `bench fleet` prints it on a line of
its own)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mothership.bench import procstat

# The parent starts a child that burns some CPU, then both wait to be killed.
PARENT = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-c', 'import sys, time; sum(range(3 * 10**7));"
    ' open(sys.argv[1], "w"); time.sleep(60)\', sys.argv[1]]); time.sleep(60)'
)


def test_children_and_their_figures_are_read_apart_from_the_parent(tmp_path: Path) -> None:
    done = tmp_path / "burnt"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(done)])
    try:
        deadline = time.monotonic() + 30
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), "the child never finished its work"
        kids = procstat.children(parent.pid)
        assert len(kids) == 1
        assert procstat.child_cpu_seconds(parent.pid) > 0.1
        assert procstat.child_cpu_seconds(parent.pid) > procstat.cpu_seconds(parent.pid)
        assert procstat.child_rss_mib(parent.pid, peak=True) > 1.0
        assert procstat.children(kids[0]) == [] and procstat.child_cpu_seconds(kids[0]) == 0.0
    finally:
        for pid in procstat.children(parent.pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        parent.kill()
        parent.wait(10)
    assert procstat.children(parent.pid) == []
