"""Kubernetes Events on the objects we reconcile, posted through kopf's queue.

kopf types the object as its own `Body`; the reconcilers hold the plain dict the Body was
made from (`dict(body)`), which kopf reads the same way (apiVersion, kind, metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf


def info(body: Mapping[str, Any], *, reason: str, message: str) -> None:
    kopf.info(cast(kopf.Body, body), reason=reason, message=message)


def warn(body: Mapping[str, Any], *, reason: str, message: str) -> None:
    kopf.warn(cast(kopf.Body, body), reason=reason, message=message)
