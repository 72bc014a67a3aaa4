"""Reading which authentication file a tenant API server runs, and why it refused one."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from mothership.controllers import cluster_status, tenant_authentication
from mothership.controllers.conditions import Condition
from mothership.controllers.tenant_authentication import Checks, Reloads, judge, parse

FILE = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\n"
HASH = tenant_authentication.file_hash(FILE)
ID = "sha256:1f2e"
P = "apiserver_authentication_config_controller_"
RELOADED = P + "automatic_reload_last_timestamp_seconds"
EXPOSITION = f"""\
# HELP apiserver_audit_event_total [ALPHA] Counter of audit events generated.
# TYPE apiserver_audit_event_total counter
apiserver_audit_event_total 0
# HELP {RELOADED} [BETA] Timestamp of the last automatic reload.
# TYPE {RELOADED} gauge
{RELOADED}{{apiserver_id_hash="{ID}",status="failure"}} 1.7651e+09
{RELOADED}{{apiserver_id_hash="{ID}",status="success"}} 1.765e+09
# TYPE {P}automatic_reloads_total counter
{P}automatic_reloads_total{{apiserver_id_hash="{ID}",status="failure"}} 2
# HELP {P}last_config_info [ALPHA] Information about the last applied configuration.
# TYPE {P}last_config_info gauge
{P}last_config_info{{apiserver_id_hash="{ID}",hash="sha256:0a0b"}} 1
apiserver_request_total{{code="200",verb="GET"}} 12
"""


def test_the_file_hash_is_sha256_of_its_bytes_as_the_api_server_labels_it() -> None:
    assert HASH.startswith("sha256:") and len(HASH) == len("sha256:") + 64
    assert tenant_authentication.file_hash(FILE + " ") != HASH


def test_parse_reads_the_loaded_hash_and_the_last_reload_times_and_skips_the_rest() -> None:
    assert parse(EXPOSITION.splitlines()) == Reloads("sha256:0a0b", 1.7651e09, 1.765e09)


def test_parse_of_an_api_server_that_never_reloaded_knows_only_the_loaded_file() -> None:
    lines = [line for line in EXPOSITION.splitlines() if "reload" not in line]
    assert parse(lines) == Reloads("sha256:0a0b", None, None)
    assert parse(["apiserver_request_total 3", "garbage{", ""]) == Reloads()


def test_parse_skips_a_reload_time_that_is_not_a_number() -> None:
    line = RELOADED + '{status="failure"} NaNish'
    assert parse([line]) == Reloads()


def test_the_file_written_and_loaded_is_confirmed() -> None:
    cond = judge(HASH, Reloads(HASH, failed_at=5.0), written_at=100.0)
    assert (cond.type, cond.status, cond.reason) == ("AuthenticationLoaded", True, "Loaded")
    assert HASH[:19] in cond.message


def test_a_failure_after_the_write_is_this_files_refusal() -> None:
    cond = judge(HASH, Reloads("sha256:old", failed_at=200.0, succeeded_at=150.0), 100.0)
    assert (cond.status, cond.reason) == (False, "Rejected")
    assert "spec.kubernetes.authentication" in cond.message
    assert "keeps serving the one it had" in cond.message


def test_a_refusal_retried_every_minute_keeps_one_message() -> None:
    first = judge(HASH, Reloads("sha256:old", failed_at=200.0), 100.0)
    later = judge(HASH, Reloads("sha256:old", failed_at=260.0), 100.0)
    assert first == later, "a changing message would write the status and post an event each time"


def test_a_failure_before_the_write_was_an_earlier_files_so_it_is_pending() -> None:
    cond = judge(HASH, Reloads("sha256:old", failed_at=50.0), written_at=100.0)
    assert (cond.status, cond.reason) == (None, "Pending")


def test_a_failure_the_next_success_followed_is_not_a_refusal() -> None:
    cond = judge(HASH, Reloads("sha256:old", failed_at=200.0, succeeded_at=300.0), 100.0)
    assert cond.reason == "Pending"


def test_an_operator_that_just_started_takes_a_failure_after_the_last_success() -> None:
    cond = judge(HASH, Reloads("sha256:old", failed_at=200.0, succeeded_at=150.0), 0.0)
    assert cond.reason == "Rejected"


def test_a_tenant_clock_a_little_behind_still_counts_the_refusal() -> None:
    cond = judge(HASH, Reloads("sha256:old", failed_at=98.0), written_at=100.0)
    assert cond.reason == "Rejected"


def test_an_api_server_that_reports_no_file_is_said_so() -> None:
    assert judge(HASH, Reloads(), 100.0).reason == "NotReported"


KLOG = (
    'E1207 12:31:05.402917       1 authentication.go:803] "failed to validate authentication '
    'config" err="jwt[0].claimMappings.uid.expression: Invalid value: \\"claim.sub\\": '
    "compilation failed: ERROR: <input>:1:1: undeclared reference to 'claim' (in container '')\""
)


def test_the_refusal_reason_is_the_api_servers_err_text_unquoted() -> None:
    lines = [
        'I1207 12:30:00.000000       1 controller.go:1] "reloaded authentication config"',
        KLOG,
    ]
    reason = tenant_authentication.refusal_reason(lines)
    assert reason is not None
    assert reason.startswith('jwt[0].claimMappings.uid.expression: Invalid value: "claim.sub"')
    assert "undeclared reference to 'claim'" in reason


def test_a_multi_line_refusal_is_read_from_its_indented_lines() -> None:
    lines = [
        'E1207 12:31:05.402917       1 authentication.go:803] "failed to validate '
        'authentication config" err=<',
        '\tjwt[0].claimMappings.uid.expression: Invalid value: "claim.sub": compilation '
        "failed: ERROR: <input>:1:1: undeclared reference to 'claim' (in container '')",
        "\t | claim.sub",
        "\t | ^",
        " >",
        'I1207 12:31:06.000000       1 controller.go:1] "something else" err="not this"',
    ]
    reason = tenant_authentication.refusal_reason(lines)
    assert reason == (
        'jwt[0].claimMappings.uid.expression: Invalid value: "claim.sub": compilation failed: '
        "ERROR: <input>:1:1: undeclared reference to 'claim' (in container '') | claim.sub | ^"
    )


def test_the_last_refusal_in_the_log_is_the_one_told() -> None:
    older = KLOG.replace("claim.sub", "old.one")
    assert "claim.sub" in (tenant_authentication.refusal_reason([older, KLOG]) or "")


def test_a_log_without_a_refusal_gives_no_reason_and_a_long_one_is_cut() -> None:
    assert tenant_authentication.refusal_reason(["nothing here", 'err="unrelated"']) is None
    long = KLOG.replace("claim.sub", "x" * 5000)
    reason = tenant_authentication.refusal_reason([long]) or ""
    assert len(reason) == tenant_authentication.MESSAGE_LIMIT + 3 and reason.endswith("...")


def test_checks_know_no_write_time_for_a_tenant_first_seen_and_stamp_a_changed_file() -> None:
    checks = Checks()
    key = ("ns", "a")
    assert checks.written_at(key, HASH) == 0.0
    checks.record(key, HASH, 0.0, True, judge(HASH, Reloads("sha256:old"), 0.0))
    assert checks.written_at(key, HASH) == 0.0
    before = time.time()
    assert checks.written_at(key, "sha256:new") >= before


def test_a_confirmed_file_is_not_asked_about_again_until_it_changes() -> None:
    checks = Checks(first=0.0)
    key = ("ns", "a")
    loaded = judge(HASH, Reloads(HASH), 0.0)
    checks.record(key, HASH, 0.0, True, loaded)
    assert not checks.due(key)
    assert checks.cached(key, HASH, True) == loaded
    assert checks.cached(key, "sha256:new", True) is None
    assert checks.cached(key, HASH, False) is None, "an API that stopped answering is asked"


def test_an_unconfirmed_file_is_asked_about_again_with_growing_pauses() -> None:
    checks = Checks(first=5.0, longest=20.0)
    key = ("ns", "a")
    pending = judge(HASH, Reloads("sha256:old"), 0.0)
    pauses = []
    for _ in range(4):
        checks.record(key, HASH, 0.0, True, pending)
        pauses.append(checks.seen[key].pause)
    assert pauses == [5.0, 10.0, 20.0, 20.0]
    assert checks.cached(key, HASH, True) == pending and not checks.due(key)
    checks.record(key, HASH, 0.0, False, pending)
    assert checks.seen[key].pause == 5.0, "the API going away starts over"
    checks.seen[key] = dataclasses.replace(checks.seen[key], next_at=time.monotonic() - 1)
    assert checks.due(key) and checks.cached(key, HASH, False) is None
    checks.forget(key)
    assert not checks.due(key)


class _NoTenant:
    client = None

    def __init__(self) -> None:
        self.kubeconfigs: dict[tuple[str, str], str] = {}


async def _no_logs() -> list[str]:
    raise AssertionError("logs are read only for a refusal or an API that does not answer")


async def _quiet_logs() -> list[str]:
    return ['E1207 12:00:00.000000 1 run.go:72] "command failed" err="etcd is not there"']


async def _refusing_logs() -> list[str]:
    return [
        'I1207 12:00:00.000000 1 options.go:1] "starting"',
        'E1207 12:00:01.000000 1 run.go:72] "command failed" err=<',
        '\tjwt[0].claimMappings.uid.expression: Invalid value: "claim.sub": compilation failed',
        " >",
    ]


def test_no_issuer_means_no_condition_and_a_silent_api_means_waiting() -> None:
    checks = Checks()
    key = ("ns", "a")
    absent = tenant_authentication.check(_NoTenant(), key, None, True, _no_logs, checks)
    assert asyncio.run(absent) is None
    waiting = asyncio.run(
        tenant_authentication.check(_NoTenant(), key, FILE, False, _quiet_logs, checks)
    )
    assert waiting is not None and (waiting.status, waiting.reason) == (None, "WaitingForAPI")
    assert checks.seen[key].expected == HASH, "the file's first sight is kept for its write time"


def test_an_api_server_that_exits_on_its_file_is_said_to_refuse_it() -> None:
    checks = Checks()
    cond = asyncio.run(
        tenant_authentication.check(_NoTenant(), ("ns", "a"), FILE, None, _refusing_logs, checks)
    )
    assert cond is not None and (cond.status, cond.reason) == (False, "Rejected")
    assert "does not start" in cond.message
    assert cond.message.endswith('uid.expression: Invalid value: "claim.sub": compilation failed')


def test_the_cluster_status_carries_the_condition_when_given() -> None:
    obs = cluster_status.Observed(
        statefulset=None,
        objects_missing=[],
        certificates_ready=True,
        kubeconfig_ready=True,
        external_address=None,
        functional=None,
        authentication=Condition("AuthenticationLoaded", False, "Rejected", "no"),
    )
    types = [c.type for c in cluster_status.conditions(1, obs)]
    assert types[-1] == "AuthenticationLoaded"
    without = cluster_status.conditions(
        1, cluster_status.Observed(None, [], True, True, None, None)
    )
    assert "AuthenticationLoaded" not in [c.type for c in without]
