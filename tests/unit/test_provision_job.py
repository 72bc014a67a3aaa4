"""The Jobs of k0smotron's provisionJob: objects rendered from the user's template, and the
entrypoints run by a real shell against stand-in `ssh`/`scp` commands that log what they
were asked and act on a directory standing for the machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mothership.api.bootstrap.v1beta2 import SUCCESS_SENTINEL
from mothership.render import provision_job
from mothership.render.provision_job import Machine

RM = {
    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
    "kind": "RemoteMachine",
    "metadata": {"name": "rm-1", "namespace": "ns", "uid": "u-1"},
}
TEMPLATE = {
    "metadata": {"labels": {"team": "a"}},
    "spec": {
        "backoffLimit": 1,
        "template": {
            "spec": {
                "containers": [
                    {"name": "ssh", "image": "ssh-client",
                     "volumeMounts": [{"name": "key", "mountPath": "/root/.ssh"}]},
                ],
                "volumes": [{"name": "key", "secret": {"secretName": "k"}}],
            }
        },
    },
}  # fmt: skip


def test_the_job_is_the_users_template_with_the_bootstrap_mounted_and_run() -> None:
    job, secret = provision_job.render(
        purpose="provision", template=TEMPLATE, remote_machine=RM, cluster="c1",
        entrypoint="#!/bin/sh\n", script="echo hi\n",
    )  # fmt: skip
    assert job["metadata"]["name"] == "c1-rm-1"  # k0smotron's name without one in the template
    assert job["metadata"]["labels"]["team"] == "a"
    assert job["metadata"]["labels"][provision_job.CLUSTER_NAME_LABEL] == "c1"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["spec"]["backoffLimit"] == 1
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [v["name"] for v in pod["volumes"]] == ["key", provision_job.VOLUME]
    assert pod["volumes"][1]["secret"]["secretName"] == "c1-rm-1-job-bootstrap-data"
    container = pod["containers"][0]
    assert [m["mountPath"] for m in container["volumeMounts"]] == [
        "/root/.ssh",
        "/var/lib/bootstrap-data",
    ]
    assert container["args"] == ["/var/lib/bootstrap-data/entrypoint.sh"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert secret["metadata"]["name"] == "c1-rm-1-job-bootstrap-data"
    assert set(secret["stringData"]) == {"entrypoint.sh", "bootstrap.sh"}
    # The template itself is left as the user wrote it.
    assert "args" not in TEMPLATE["spec"]["template"]["spec"]["containers"][0]
    owned = provision_job.owned_by(secret, {**job, "metadata": {**job["metadata"], "uid": "j"}})
    assert owned["metadata"]["ownerReferences"][0] == {
        "apiVersion": "batch/v1", "kind": "Job", "name": "c1-rm-1", "uid": "j"}  # fmt: skip


def test_a_job_of_the_same_name_made_for_another_machine_is_not_ours() -> None:
    # A name in the template is shared by every RemoteMachine of a RemoteMachineTemplate.
    named = {**TEMPLATE, "metadata": {"name": "provision"}}
    job, _ = provision_job.render(purpose="provision", template=named, remote_machine=RM,
                                  cluster="c1", entrypoint="x")  # fmt: skip
    other = {**RM, "metadata": {**RM["metadata"], "name": "rm-2", "uid": "u-2"}}
    job2, _ = provision_job.render(purpose="provision", template=named, remote_machine=other,
                                   cluster="c1", entrypoint="x")  # fmt: skip
    assert job["metadata"]["name"] == job2["metadata"]["name"] == "provision"
    assert provision_job.belongs_to(job, RM)
    assert not provision_job.belongs_to(job, other)
    assert not provision_job.belongs_to({"metadata": {"name": "provision"}}, RM)  # a user's


def test_the_clean_up_job_is_not_owned_and_long_names_are_cut_with_a_hash() -> None:
    named = {**TEMPLATE, "metadata": {"name": "mine"}}
    job, secret = provision_job.render(
        purpose="clean-up", template=named, remote_machine=RM, cluster="c1", entrypoint="x"
    )
    assert job["metadata"]["name"] == "mine-cleanup"
    assert "ownerReferences" not in job["metadata"]
    assert set(secret["stringData"]) == {"entrypoint.sh"}
    long = provision_job.job_name(None, "c" * 40, "m" * 40, "clean-up")
    assert len(long) <= 63
    assert long != provision_job.job_name(None, "c" * 40, "m" * 39 + "n", "clean-up")


def test_a_template_that_cannot_make_a_job_is_refused_naming_the_field() -> None:
    with pytest.raises(provision_job.ProvisionJobError, match="jobSpecTemplate"):
        provision_job.render(purpose="provision", template=None, remote_machine=RM,
                             cluster="c", entrypoint="x")  # fmt: skip


def test_outcome_reads_the_jobs_conditions_and_the_failed_pods_message() -> None:
    running = provision_job.outcome({"status": {"active": 1}}, [])
    assert running == ("running", "")
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert provision_job.outcome(done, [])[0] == "complete"
    failed = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        }
    }
    pod = {"metadata": {"creationTimestamp": "2026-12-05T10:00:00Z"},
           "status": {"containerStatuses": [{"state": {"terminated": {
               "exitCode": 3, "message": "the bootstrap exited 3\n"}}}]}}  # fmt: skip
    state, message = provision_job.outcome(failed, [pod])
    assert state == "failed"
    assert "BackoffLimitExceeded" in message and "exit 3: the bootstrap exited 3" in message


# -- the entrypoints, run -------------------------------------------------------------------

FAKE_SSH = r"""#!/bin/sh
# ssh -p PORT user@host COMMAND: logged, then run by a shell inside the machine directory
echo "ssh $*" >> "$LOG"
shift 2; shift
cd "$MACHINE" && exec sh -c "$*"
"""
FAKE_SCP = r"""#!/bin/sh
# scp -P PORT SRC user@host:PATH: logged, then copied into the machine directory
echo "scp $*" >> "$LOG"
cp "$3" "$MACHINE/${4#*:}"
"""


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("ssh", FAKE_SSH), ("scp", FAKE_SCP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    machine = tmp_path / "machine"
    machine.mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LOG": str(tmp_path / "log"),
        "MACHINE": str(machine),
    }


def _entry(
    tmp_path: Path, text: str, script: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    mount = tmp_path / "data"
    mount.mkdir(exist_ok=True)
    (mount / "bootstrap.sh").write_text(script)
    # The Job mounts the data at /var/lib/bootstrap-data; here it is a temp dir.
    entry = text.replace(provision_job.MOUNT_DIR, str(mount))
    return subprocess.run(["sh", "-c", entry], capture_output=True, text=True, env=env,
                          timeout=30, check=False)  # fmt: skip


def test_the_provision_entrypoint_copies_runs_and_checks_the_sentinel(
    tmp_path: Path, stand_ins: dict[str, str]
) -> None:
    machine_dir = Path(stand_ins["MACHINE"])
    work = machine_dir / "work dir"  # a space: every path is quoted
    sentinel = machine_dir / "sentinel"
    machine = Machine(address="10.0.0.5", port=2222, user="ops", working_dir=str(work))
    entry = provision_job.provision_entrypoint(machine, "ssh", "scp", "u-1").replace(
        SUCCESS_SENTINEL, str(sentinel)
    )
    ran = _entry(tmp_path, entry, f"echo ran >> '{machine_dir}/runs'; touch '{sentinel}'\n",
                 stand_ins)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (machine_dir / "runs").read_text() == "ran\n"
    assert (work / "bootstrap-u-1.sh").is_file()  # moved out of the login's home
    log = Path(stand_ins["LOG"]).read_text()
    assert "scp -P 2222 " in log and "ops@10.0.0.5:mothership-bootstrap-u-1.sh" in log
    assert "ssh -p 2222 ops@10.0.0.5 " in log
    # Once bootstrapped, a second run (a retried pod, a recreated Job) does nothing.
    again = _entry(tmp_path, entry, "echo ran >> runs\n", stand_ins)
    assert again.returncode == 0 and "bootstrapped already" in again.stdout
    assert (machine_dir / "runs").read_text() == "ran\n"


def test_a_failing_bootstrap_or_a_missing_sentinel_fails_the_job(
    tmp_path: Path, stand_ins: dict[str, str]
) -> None:
    machine_dir = Path(stand_ins["MACHINE"])
    machine = Machine(address="h", working_dir=str(machine_dir / "w"), use_sudo=False)
    entry = provision_job.provision_entrypoint(machine, "ssh", "scp", "u").replace(
        SUCCESS_SENTINEL, str(machine_dir / "sentinel")
    )
    failed = _entry(tmp_path, entry, "exit 7\n", stand_ins)
    assert failed.returncode == 7 and "the bootstrap exited 7" in failed.stdout
    silent = _entry(tmp_path, entry, "true\n", stand_ins)
    assert silent.returncode == 1 and "ended without" in silent.stdout


def test_the_clean_up_entrypoint_runs_the_commands_and_forgets_the_bootstrap(
    tmp_path: Path, stand_ins: dict[str, str]
) -> None:
    machine_dir = Path(stand_ins["MACHINE"])
    sentinel = machine_dir / "sentinel"
    sentinel.touch()
    machine = Machine(address="h", working_dir=str(machine_dir))
    (machine_dir / "bootstrap-u.sh").touch()
    entry = provision_job.clean_up_entrypoint(
        machine, "ssh", ['echo "it\'s clean" > clean'], "u"
    ).replace(SUCCESS_SENTINEL, str(sentinel))
    ran = _entry(tmp_path, entry, "", stand_ins)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (machine_dir / "clean").read_text() == "it's clean\n"  # quotes survive
    assert not sentinel.exists() and not (machine_dir / "bootstrap-u.sh").exists()
    with_sudo = provision_job.clean_up_entrypoint(
        Machine(address="h", use_sudo=True), "ssh -i k", ["true"], "u"
    )
    assert "ssh -i k -p 22 root@h 'sudo -n sh -c " in with_sudo
