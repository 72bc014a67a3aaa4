"""`mothership tools install` fails with a message that says what is missing and what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def _install(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "MOTHERSHIP_BIN_DIR": str(tmp_path / "bin"),
        "MOTHERSHIP_CACHE_DIR": str(tmp_path / "cache"),
        **env,
    }
    return subprocess.run(
        ["mothership", "tools", "install", "--only", "kine"],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )


def test_missing_go_is_named_with_the_fix(tmp_path: Path) -> None:
    python_dir = str(Path(shutil.which("mothership") or "").parent)
    out = _install(tmp_path, PATH=f"{python_dir}:/usr/bin:/bin")
    assert shutil.which("go", path=f"{python_dir}:/usr/bin:/bin") is None
    assert out.returncode == 3, out.stderr
    assert "Go is not on PATH" in out.stderr
    assert "install Go" in out.stderr
    assert "Traceback" not in out.stderr


def test_unreachable_proxy_is_named_with_the_fix(tmp_path: Path) -> None:
    out = _install(tmp_path, GOPROXY="http://127.0.0.1:9")
    assert out.returncode == 3, out.stderr
    assert "module proxy http://127.0.0.1:9 is not reachable" in out.stderr
    assert "GOPROXY" in out.stderr
    assert not (tmp_path / "bin" / "kine").exists()
