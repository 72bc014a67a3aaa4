"""Digests that make a changed ConfigMap roll the tenant add-on pods that read it: pure."""

from __future__ import annotations

import hashlib
import json
from typing import Any

# On a DaemonSet's pod template: a changed ConfigMap then rolls the pods that read it.
CONFIG_HASH = "mothership.io/config-hash"


def config_digest(*parts: Any) -> str:
    """A short digest of what a component reads from its ConfigMap."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
