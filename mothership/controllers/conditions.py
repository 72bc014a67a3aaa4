"""Status conditions (metav1.Condition shape) that change only when their meaning does.

lastTransitionTime moves only when status flips, so a resync that finds nothing new
produces an identical status and therefore no write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None = Unknown
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(
    previous: list[dict[str, Any]] | None,
    wanted: list[Condition],
    generation: int | None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """New condition list; keeps the old lastTransitionTime where status is unchanged."""
    old = {c.get("type"): c for c in previous or []}
    out = []
    for cond in wanted:
        prior = old.get(cond.type)
        same = prior is not None and prior.get("status") == cond.status_text
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status_text,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": (
                prior.get("lastTransitionTime") if same and prior else (now or now_iso())
            ),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    return out
