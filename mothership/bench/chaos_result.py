"""The pure parts of `mothership bench chaos`: what counts as a broken invariant, and the table.

Kept apart from the run (processes, API calls) so each judgement can be tested on plain
dicts: a CA is "regenerated" when a Secret first seen with one uid or certificate later
shows another; an object is an "orphan" when it carries a Cluster's labels but no owner
reference to that Cluster as it exists now; writes per object come from the audit log's
per-object counts, with status writes (a subresource the log names) counted apart.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_WRITES_PER_OBJECT = 3
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CLUSTER_LABEL = "cluster"


def fingerprint(secret: Mapping[str, Any]) -> str:
    """SHA-256 of the certificate (``tls.crt``) a Secret holds; "" when it holds none."""
    crt = ((secret.get("data") or {}).get("tls.crt")) or ""
    if not crt:
        return ""
    return hashlib.sha256(base64.b64decode(crt)).hexdigest()


def shares(n: int, kills: int) -> list[range]:
    """Cluster indices 0..n-1 in one share per kill window (one share without kills).

    Each share is created right after the operator's (re)start, so every kill lands
    while Clusters are being created and reconciled, not after the fleet settled.
    """
    parts = max(1, min(kills, n))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


OPERATOR_KILL = "operator"
APISERVER_RESTART = "apiserver"
DATASTORE_STALL = "datastore"


def plan(kills: int, restarts: int, stalls: int, rng: random.Random) -> list[str]:
    """The order of the faults: the operator's kills in turn, each API server restart and
    datastore stall at a random place among them but never first, so it lands while the
    operator reconciles Clusters made before it (not on an empty mothership)."""
    faults = [OPERATOR_KILL] * kills
    for kind in [APISERVER_RESTART] * restarts + [DATASTORE_STALL] * stalls:
        faults.insert(rng.randint(min(1, len(faults)), len(faults)), kind)
    return faults


@dataclass
class Fault:
    kind: str
    at: float  # seconds after the first create
    lasted: float  # operator or API server not answering, or the datastore frozen


def describe(faults: list[Fault]) -> str:
    """ "5 SIGKILLs of the operator, 1 API server SIGKILL + restart (down 3.2 s), ..."."""
    parts = []
    kills = [f for f in faults if f.kind == OPERATOR_KILL]
    parts.append(f"{len(kills)} SIGKILLs of the operator")
    restarts = [f for f in faults if f.kind == APISERVER_RESTART]
    if restarts:
        downs = ", ".join(f"{f.lasted:.1f} s" for f in restarts)
        parts.append(f"{len(restarts)} API server SIGKILL + restart (no /readyz for {downs})")
    stalls = [f for f in faults if f.kind == DATASTORE_STALL]
    if stalls:
        lengths = ", ".join(f"{f.lasted:.0f} s" for f in stalls)
        parts.append(f"{len(stalls)} datastore stall (SIGSTOP for {lengths})")
    return ", ".join(parts)


def lost(acknowledged: Mapping[str, str], present: Mapping[str, str]) -> list[str]:
    """Creates the API server acknowledged whose object is gone or is another one now.

    ``acknowledged`` maps each name to the uid its create returned ("" when a retried
    create answered 409: the first attempt went through, uid unknown); ``present`` maps
    the names listed at the end to their uids."""
    out = []
    for name, uid in sorted(acknowledged.items()):
        if name not in present:
            out.append(f"{name}: acknowledged, now missing")
        elif uid and present[name] != uid:
            out.append(f"{name}: acknowledged as uid {uid}, now uid {present[name]}")
    return out


@dataclass
class CaLedger:
    """Each CA Secret's uid and certificate when first seen; any later difference is kept.

    A deleted-and-recreated Secret shows as a new uid, a rewritten one as a new
    fingerprint: both mean every kubeconfig and joined node signed by the old CA broke.
    """

    first: dict[str, tuple[str, str]] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)

    def observe(self, secret: Mapping[str, Any]) -> str | None:
        meta = secret.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        seen = (str(meta.get("uid", "")), fingerprint(secret))
        before = self.first.setdefault(key, seen)
        if before == seen:
            return None
        what = "uid" if before[0] != seen[0] else "certificate"
        change = f"{key}: {what} changed"
        if change not in self.changes:
            self.changes.append(change)
        return change

    @property
    def regenerated(self) -> int:
        return len({c.split(":", 1)[0] for c in self.changes})


def orphans(
    clusters: Mapping[tuple[str, str], str], children: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Children that lost their Cluster, or never pointed at it.

    ``clusters`` maps (namespace, name) to the uid of every Cluster that exists;
    ``children`` are objects labelled as managed by mothership for a Cluster (their
    ``kind`` set). An object is an orphan when its Cluster is gone, when it has no owner
    reference to a Cluster, or when that reference names another uid (a Cluster of the
    same name deleted and made again): garbage collection would never remove it.
    """
    out = []
    for obj in children:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        cluster = labels.get(CLUSTER_LABEL)
        if not cluster:
            continue
        where = f"{obj.get('kind', '?')} {meta.get('namespace')}/{meta.get('name')}"
        uid = clusters.get((str(meta.get("namespace")), cluster))
        owners = [r for r in meta.get("ownerReferences") or [] if r.get("kind") == "Cluster"]
        if uid is None:
            out.append(f"{where}: Cluster {cluster} does not exist")
        elif not owners:
            out.append(f"{where}: no ownerReference to Cluster {cluster}")
        elif all(r.get("uid") != uid for r in owners):
            out.append(f"{where}: ownerReference to another Cluster {cluster} (stale uid)")
    return out


@dataclass
class Writes:
    """Writes per object of the Clusters' namespace; status and other writes counted apart.

    Outside that namespace the operator writes its registrations (CRD conversion, webhook
    configurations) once per start: a cost of each restart, not of any Cluster, so they
    are reported apart (``other``) instead of failing the per-object limit.
    """

    per_object: dict[str, int] = field(default_factory=dict)
    status_writes: int = 0
    other: dict[str, int] = field(default_factory=dict)
    # Creates cut off by a kill before the API server read their body: the log names
    # no object (``<namespace>/None``) and nothing was stored.
    unnamed: int = 0

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], namespace: str | None = None) -> Writes:
        """From the audit reader's keys, ``<resource>[/<subresource>] <namespace>/<name>``."""
        out = cls()
        for key, n in counts.items():
            resource, _, where = key.partition(" ")
            if where.endswith("/None"):
                out.unnamed += n
            elif namespace is not None and not where.startswith(f"{namespace}/"):
                out.other[key] = out.other.get(key, 0) + n
            elif "/" in resource:
                out.status_writes += n
            else:
                out.per_object[key] = out.per_object.get(key, 0) + n
        return out

    @property
    def max(self) -> int:
        return max(self.per_object.values(), default=0)

    @property
    def p99(self) -> int:
        values = sorted(self.per_object.values())
        if not values:
            return 0
        return values[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]

    def over(self, limit: int = MAX_WRITES_PER_OBJECT) -> list[str]:
        return sorted(f"{k}: {n} writes" for k, n in self.per_object.items() if n > limit)


@dataclass
class Result:
    clusters: int
    kills: int = 0
    converged: int = 0
    ca_secrets: int = 0
    ca: CaLedger = field(default_factory=CaLedger)
    orphans: list[str] = field(default_factory=list)
    writes: Writes = field(default_factory=Writes)
    recover_seconds: float | None = None
    create_retries: int = 0
    kill_times: list[float] = field(default_factory=list)
    verbs: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # name -> uid from the create
    lost: list[str] = field(default_factory=list)
    operator_exits: list[int] = field(default_factory=list)  # exit codes, none of our doing

    def failures(self) -> list[str]:
        """Every broken invariant, one line each; empty when the run passed."""
        out = []
        if self.converged < self.clusters:
            out.append(f"not converged: {self.clusters - self.converged} of {self.clusters}")
        out += [f"CA regenerated: {c}" for c in self.ca.changes]
        out += [f"acknowledged write lost: {w}" for w in self.lost]
        out += [f"orphan: {o}" for o in self.orphans]
        if self.operator_exits:
            out.append(
                f"the operator exited by itself {len(self.operator_exits)} time(s) "
                f"(exit codes {', '.join(map(str, self.operator_exits))}): see logs/operator.log"
            )
        out += [f"writes per object > {MAX_WRITES_PER_OBJECT}: {w}" for w in self.writes.over()]
        return out

    def rows(self) -> list[tuple[str, str]]:
        recover = "-" if self.recover_seconds is None else f"{self.recover_seconds:.1f} s"
        return [
            (
                "faults injected",
                describe(self.faults) if self.faults else f"{self.kills} SIGKILLs of the operator",
            ),
            ("converged", f"{self.converged} / {self.clusters}"),
            (
                "acknowledged creates lost",
                f"{len(self.lost)} of {len(self.acknowledged)} (each Cluster whose create "
                "was answered, listed again at the end with the same uid)",
            ),
            (
                "CAs regenerated (data lost)",
                f"{self.ca.regenerated} of {self.ca_secrets} PKI Secrets (CAs, SA keys)",
            ),
            ("orphaned objects", str(len(self.orphans))),
            (
                "operator exits by itself",
                f"{len(self.operator_exits)} (restarted at once, as a kubelet would; "
                "a fault is no reason to give up)",
            ),
            (
                "writes per object",
                f"max {self.writes.max}, p99 {self.writes.p99} over "
                f"{len(self.writes.per_object)} objects (limit {MAX_WRITES_PER_OBJECT}; "
                f"{self.writes.status_writes} status writes counted apart, "
                f"{self.writes.unnamed} creates cut off unnamed)",
            ),
            (
                "registration writes",
                f"{sum(self.writes.other.values())} to {len(self.writes.other)} cluster-wide "
                f"objects (CRDs, webhook configurations), max "
                f"{max(self.writes.other.values(), default=0)} each: "
                "at most one per operator start",
            ),
            ("time to recover", f"{recover} (end of the last fault -> all converged)"),
            ("creates retried", f"{self.create_retries} (refused or cut off by a fault)"),
        ]

    def lines(self) -> list[str]:
        return table(self.rows(), self.failures())


def table(
    rows: list[tuple[str, str]], failures: list[str], verdict: str = "invariants"
) -> list[str]:
    """A chaos table: one aligned line per row, the verdict, then each broken invariant."""
    width = max(len(k) for k, _ in [*rows, (verdict, "")])
    out = [f"{k.ljust(width)}  {v}" for k, v in rows]
    out.append(verdict.ljust(width) + ("  FAILED" if failures else "  all hold"))
    return out + [f"  {f}" for f in failures]
