"""Whether the tenant API server runs the authentication file the operator wrote.

The API server reloads an edited file by itself and, when it refuses one (a CEL expression
that does not compile, a name that is not declared), keeps the file it has and says why
only in its log. Admission catches most mistakes, not all of them, so without this an
edit could be accepted, look applied, and never take effect. The API server's /metrics
say which file it loaded last (the sha256 of its bytes) and when a reload last failed;
the operator asks only while the file it wrote is not yet confirmed, and once it is,
nothing more until the file changes. The reason for a refusal is read from the
container's log (GET pods/log, no exec), so the condition can name it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.config import client_adapter

from mothership.controllers import tenant
from mothership.controllers.conditions import Condition

CONDITION = "AuthenticationLoaded"
PREFIX = "apiserver_authentication_config_controller_"
LOADED = PREFIX + "last_config_info"
LAST_RELOAD = PREFIX + "automatic_reload_last_timestamp_seconds"
CLOCK_SLACK = 5.0  # seconds the tenant's clock may be behind the operator's
MESSAGE_LIMIT = 700
LOG_LINES = 400
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_ERR = re.compile(r'err="((?:[^"\\]|\\.)*)"')
_REFUSAL_LINES = (
    "failed to load authentication config",
    "failed to validate authentication config",
    "failed to update authentication config",
)


def file_hash(text: str) -> str:
    """The hash the API server labels its loaded file with: sha256 of the bytes read."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Reloads:
    """What one API server's metrics say about its authentication file."""

    loaded: str | None = None  # file_hash of the file it runs
    failed_at: float | None = None  # unix time of the last failed reload
    succeeded_at: float | None = None


def parse(lines: Iterable[str]) -> Reloads:
    """The authentication lines of a Prometheus text exposition; the rest is skipped."""
    loaded = failed = succeeded = None
    for line in lines:
        if not line.startswith(PREFIX):
            continue
        name, _, rest = line.partition("{")
        labels_text, _, value = rest.rpartition("}")
        labels = dict(_LABEL.findall(labels_text))
        if name == LOADED and labels.get("hash"):
            loaded = labels["hash"]
        elif name == LAST_RELOAD:
            try:
                when = float(value.split()[0])
            except (IndexError, ValueError):
                continue
            if labels.get("status") == "failure":
                failed = when
            elif labels.get("status") == "success":
                succeeded = when
    return Reloads(loaded, failed, succeeded)


def refusal_reason(log_lines: Iterable[str]) -> str | None:
    """The API server's own words for its last refusal of an edited file (its `err`)."""
    return _last_error(log_lines, _REFUSAL_LINES)


def startup_refusal(log_lines: Iterable[str]) -> str | None:
    """Why an API server exited at start, when it was its authentication file."""
    reason = _last_error(log_lines, ('"command failed"',))
    if reason and ("authentication config" in reason or reason.startswith("jwt[")):
        return reason
    return None


def _last_error(log_lines: Iterable[str], needles: tuple[str, ...]) -> str | None:
    """The `err` of the last line holding one of the needles.

    klog writes a one-line value as `err="..."` and one with newlines (a CEL compile error
    points at the column on a line of its own) as `err=<`, the lines tab-indented, then ` >`.
    """
    reason = None
    lines = iter(log_lines)
    for line in lines:
        if not any(needle in line for needle in needles):
            continue
        found = _ERR.search(line)
        if found:
            reason = found.group(1).replace('\\"', '"').replace("\\\\", "\\")
        elif line.rstrip().endswith("err=<"):
            parts = []
            for more in lines:
                if not more.startswith("\t"):
                    break
                parts.append(more.strip())
            reason = " ".join(part for part in parts if part) or None
    if reason and len(reason) > MESSAGE_LIMIT:
        reason = reason[:MESSAGE_LIMIT] + "..."
    return reason


def judge(expected: str, reloads: Reloads, written_at: float) -> Condition:
    """Loaded, refused, or not yet: from the metrics and when the file was written.

    A failed reload counts as this file's refusal only if it came after the file was
    written and after the last success; an older failure was of an earlier file. An
    operator that just started knows no write time (0): a failure after the last success
    is taken as this file's, which is right unless the kubelet has yet to deliver a newer
    edit, and then the next check sees it loaded.
    """
    if reloads.loaded == expected:
        return Condition(
            CONDITION,
            True,
            "Loaded",
            f"the tenant API server runs the authentication configuration written "
            f"({expected[:19]}...)",
        )
    failed = reloads.failed_at
    if (
        failed is not None
        and failed >= written_at - CLOCK_SLACK
        and (reloads.succeeded_at is None or failed > reloads.succeeded_at)
    ):
        # No time in the message: a refusal retried every minute ("failed to update") would
        # change it, and with it the status and the event, at every check.
        return Condition(
            CONDITION,
            False,
            "Rejected",
            "the tenant API server refused the authentication configuration and keeps "
            "serving the one it had; fix spec.kubernetes.authentication",
        )
    if reloads.loaded is None:
        return Condition(
            CONDITION,
            None,
            "NotReported",
            "the tenant API server does not report which authentication file it runs",
        )
    return Condition(
        CONDITION,
        None,
        "Pending",
        "waiting for the tenant API server to load the edited file (the kubelet refreshes "
        "the mounted ConfigMap within about a minute)",
    )


def waiting() -> Condition:
    return Condition(
        CONDITION, None, "WaitingForAPI", "the tenant API does not answer, so it cannot be asked"
    )


@dataclass(frozen=True)
class Seen:
    """The last check of one tenant."""

    expected: str  # file_hash of the file written
    written_at: float  # unix time it was first expected (0: before this process)
    answered: bool  # the tenant API answered then
    outcome: Condition
    next_at: float  # monotonic time to ask again
    pause: float


@dataclass
class Checks:
    """Per tenant: the file expected, when it was first expected, the outcome, when to ask.

    Confirmed means not asked again until the file changes; otherwise asked after 5 s,
    doubling to 2 min (a refused file stays refused until the spec changes). Whether the
    API answers is part of the outcome: a refused file is fatal at the next restart.
    """

    first: float = 5.0
    longest: float = 120.0
    seen: dict[tuple[str, str], Seen] = field(default_factory=dict)

    def due(self, key: tuple[str, str]) -> bool:
        last = self.seen.get(key)
        if last is None or last.outcome.status is True:
            return False
        return time.monotonic() >= last.next_at

    def forget(self, key: tuple[str, str]) -> None:
        self.seen.pop(key, None)

    def outcome(self, key: tuple[str, str]) -> Condition | None:
        last = self.seen.get(key)
        return last.outcome if last else None

    def written_at(self, key: tuple[str, str], expected: str) -> float:
        """When this file was first expected; 0 when the process has not seen the tenant."""
        last = self.seen.get(key)
        if last is None:
            return 0.0
        return last.written_at if last.expected == expected else time.time()

    def cached(self, key: tuple[str, str], expected: str, answered: bool) -> Condition | None:
        last = self.seen.get(key)
        if (
            last
            and last.expected == expected
            and last.answered == answered
            and (last.outcome.status is True or time.monotonic() < last.next_at)
        ):
            return last.outcome
        return None

    def record(
        self, key: tuple[str, str], expected: str, written: float, answered: bool, cond: Condition
    ) -> None:
        last = self.seen.get(key)
        same = last is not None and last.expected == expected and last.answered == answered
        pause = min(last.pause * 2, self.longest) if last is not None and same else self.first
        self.seen[key] = Seen(expected, written, answered, cond, time.monotonic() + pause, pause)


LogReader = Callable[[], Awaitable[list[str]]]


async def check(
    rt: tenant.Access,
    key: tuple[str, str],
    text: str | None,
    functional: bool | None,
    read_logs: LogReader,
    checks: Checks,
) -> Condition | None:
    """The AuthenticationLoaded condition (None when the Cluster trusts no issuer)."""
    if text is None:
        checks.forget(key)
        return None
    expected = file_hash(text)
    answered = bool(functional)
    cached = checks.cached(key, expected, answered)
    if cached is not None:
        return cached
    written = checks.written_at(key, expected)
    if not answered:
        # An API server that refuses its file at start exits: its last words say so.
        # Recorded either way, so a refusal while it is down is not taken as older.
        cond = waiting()
        reason = startup_refusal(await read_logs())
        if reason:
            cond = Condition(
                CONDITION,
                False,
                "Rejected",
                "the tenant API server does not start: it refuses the authentication "
                f"configuration; fix spec.kubernetes.authentication: {reason}",
            )
        checks.record(key, expected, written, answered, cond)
        return cond
    try:
        # About 1.5 MB of text (77 KB gzipped on the wire); only our few lines are kept.
        reloads = parse([line async for line in _metrics(rt, key) if line.startswith(PREFIX)])
    except Exception as exc:  # connection refused, TLS, timeouts, 403
        cond = Condition(
            CONDITION, None, "MetricsUnreadable", f"GET /metrics: {tenant.describe(exc)}"
        )
    else:
        cond = judge(expected, reloads, written)
        if cond.reason == "Rejected":
            reason = refusal_reason(await read_logs())
            if reason:
                cond = Condition(CONDITION, False, "Rejected", f"{cond.message}: {reason}")
    checks.record(key, expected, written, answered, cond)
    return cond


def pod_logs(client: AsyncClient, namespace: str, pods: list[str], container: str) -> LogReader:
    """Reads the last lines of each pod's container (GET pods/log; a pod that is gone or
    not started yet gives nothing)."""

    async def read() -> list[str]:
        lines: list[str] = []
        for pod in pods:
            try:
                async for line in client.log(
                    pod,
                    namespace=namespace,
                    container=container,
                    tail_lines=LOG_LINES,
                    newlines=False,
                ):
                    lines.append(line)
            except Exception:  # a missing log only leaves the reason out
                continue
        return lines

    return read


async def _metrics(rt: tenant.Access, key: tuple[str, str]) -> AsyncIterator[str]:
    config = KubeConfig.from_dict(yaml.safe_load(await tenant.kubeconfig_text(rt, key))).get()
    if config is None:
        raise ValueError("the kubeconfig names no context")
    params = client_adapter.ConnectionParams(trust_env=False)
    timeout = tenant.CHECK_TIMEOUT * 3  # the exposition is a few MB
    async with (
        client_adapter.AsyncClient(config, params) as client,
        client.stream("GET", "/metrics", timeout=timeout) as answer,
    ):
        answer.raise_for_status()
        async for line in answer.aiter_lines():
            yield line
