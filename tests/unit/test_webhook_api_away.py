"""Which registration errors an operator waits out at start and which it exits on."""

from __future__ import annotations

import httpx2
import pytest
from lightkube.core.exceptions import ApiError

from mothership.webhooks.runtime import api_away


def _api_error(code: int) -> ApiError:
    body = {"kind": "Status", "code": code, "reason": "x", "message": "m"}
    request = httpx2.Request("PATCH", "https://x")
    return ApiError(response=httpx2.Response(code, json=body, request=request))


@pytest.mark.parametrize("code", [429, 500, 503, 504])
def test_a_server_that_is_busy_or_restarting_is_away(code: int) -> None:
    assert api_away(_api_error(code))


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 422])
def test_a_server_that_says_no_is_not_away(code: int) -> None:
    assert not api_away(_api_error(code))


def test_no_connection_or_a_timeout_is_away_other_errors_are_not() -> None:
    request = httpx2.Request("GET", "https://127.0.0.1:9")
    assert api_away(httpx2.ConnectError("refused", request=request))
    assert api_away(httpx2.ReadTimeout("slow", request=request))
    assert not api_away(ValueError("no CA"))
    assert not api_away(FileNotFoundError("tls.crt"))
