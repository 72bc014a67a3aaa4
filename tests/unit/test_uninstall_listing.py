"""The uninstall's LISTs wait out a kind whose watch cache is still filling (429 "storage is
(re)initializing", seen right after an API server starts) and give up on anything else."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Secret

from mothership.install import apply


def _api_error(code: int) -> ApiError:
    body = {"kind": "Status", "code": code, "reason": "x", "message": "storage is initializing"}
    request = httpx2.Request("GET", "https://x")
    return ApiError(response=httpx2.Response(code, json=body, request=request))


class _Lists:
    """Answers each LIST with the next of ``answers``: an error to raise or items."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def list(self, resource: Any, namespace: str, **selectors: Any) -> list[str]:
        assert namespace == "*"
        self.calls += 1
        found = self.answers.pop(0)
        if isinstance(found, Exception):
            raise found
        return list(found)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply.time, "sleep", lambda seconds: None)


def test_a_storage_still_initializing_is_asked_again() -> None:
    lists = _Lists(_api_error(429), _api_error(429), ["a", "b"])
    assert apply._list_everywhere(lists, Secret) == ["a", "b"]  # type: ignore[arg-type]
    assert lists.calls == 3


@pytest.mark.parametrize("code", [403, 404, 500])
def test_other_refusals_are_not_waited_out(code: int) -> None:
    lists = _Lists(_api_error(code), ["never"])
    with pytest.raises(ApiError):
        apply._list_everywhere(lists, Secret)  # type: ignore[arg-type]
    assert lists.calls == 1


def test_the_wait_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply, "STORAGE_INITIALIZING_WAIT", 0.0)
    lists = _Lists(_api_error(429), ["late"])
    with pytest.raises(ApiError):
        apply._list_everywhere(lists, Secret)  # type: ignore[arg-type]
