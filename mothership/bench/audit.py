"""Count the operator's API requests from the API server's own audit log.

The operator runs with its own client certificate, and the audit policy records only
that user: every request it made, and nothing anyone else made, is in the log.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def policy(user: str) -> str:
    return json.dumps(
        {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "Metadata", "users": [user]},
                {"level": "None"},
            ],
        }
    )


@dataclass
class Requests:
    by_verb: Counter[str] = field(default_factory=Counter)
    writes_by_object: Counter[str] = field(default_factory=Counter)
    # Events are posted, not managed: counted apart from the objects' writes.
    events: int = 0
    # Leader-election renewals: a fixed cost of the operator, not of any Cluster.
    lease_renewals: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_verb.values())

    @property
    def writes(self) -> int:
        """Writes to the objects the operator manages (not events, not its Lease)."""
        return sum(self.writes_by_object.values())


def read(path: Path, offset: int = 0) -> tuple[Requests, int]:
    """Requests logged after byte `offset`; returns them and the new offset."""
    out = Requests()
    if not path.exists():
        return out, offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    for line in data.splitlines():
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete":
            continue
        verb = event.get("verb", "")
        out.by_verb[verb] += 1
        ref = event.get("objectRef") or {}
        if verb in WRITE_VERBS and ref.get("resource") == "events":
            out.events += 1
        elif verb in WRITE_VERBS and ref.get("resource") == "leases":
            out.lease_renewals += 1
        elif verb in WRITE_VERBS:
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            key = f"{ref.get('resource')}{sub} {ref.get('namespace')}/{ref.get('name')}"
            out.writes_by_object[key] += 1
    return out, offset + len(data)
