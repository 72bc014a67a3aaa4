"""all_at_once: results in order, at most `limit` at a time, the first failure as itself."""

from __future__ import annotations

import asyncio

import pytest

from mothership.controllers.concurrently import all_at_once


def test_results_in_order_and_the_limit_holds() -> None:
    running, most = 0, 0

    async def job(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01 * (5 - i))
        running -= 1
        return i

    assert asyncio.run(all_at_once([job(i) for i in range(5)], limit=2)) == [0, 1, 2, 3, 4]
    assert most == 2
    most = 0
    asyncio.run(all_at_once([job(i) for i in range(5)]))
    assert most == 5


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no coroutine left never awaited
def test_the_first_failure_is_raised_as_itself_and_the_rest_cancelled() -> None:
    finished: list[int] = []

    async def job(i: int) -> int:
        if i == 1:
            raise KeyError("boom")
        await asyncio.sleep(0.05)
        finished.append(i)
        return i

    # One at a time: the first finishes, the second fails, the last two never start.
    with pytest.raises(KeyError, match="boom"):
        asyncio.run(all_at_once([job(i) for i in range(4)], limit=1))
    assert finished == [0]
