"""A bench refuses a state directory an earlier bench run left its mothership in."""

from __future__ import annotations

from pathlib import Path

import pytest

from mothership.bench import fleet
from mothership.errors import InvalidInput
from mothership.testenv.config import CONFIG_FILE


def test_a_kept_mothership_is_refused_with_the_command_that_removes_it(tmp_path: Path) -> None:
    state = tmp_path / "bench"
    state.mkdir()
    (state / CONFIG_FILE).write_text("{}")
    with pytest.raises(InvalidInput) as refused:
        fleet.configure_mothership(state, 10)
    assert f"mothership dev down --name bench --state-dir {state} --purge" in str(refused.value)


def test_a_new_or_empty_directory_is_taken(tmp_path: Path) -> None:
    fleet.refuse_a_kept_mothership(tmp_path / "new", "bench")
    fleet.refuse_a_kept_mothership(tmp_path, "bench")
    made = fleet.configure_mothership(tmp_path / "fresh", 10)
    assert made.cfg.state_dir == tmp_path / "fresh"
