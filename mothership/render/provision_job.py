"""k0smotron's `provisionJob`: a RemoteMachine bootstrapped (and cleaned up) from a Job.

Some machines are reachable only from pods (a routed site network, a bastion the user's
image knows), and some platforms want the SSH client and its key in a pod of their own,
not in the operator. The user's Job template brings an image with `ssh`, `scp` and a shell
and mounts the key; the operator adds a Secret holding the bootstrap script and an
entrypoint that copies the script over with `scpCommand`, runs it with `sshCommand`
(through sudo when asked) and checks Cluster API's success sentinel, so a Job that
Completes means a bootstrapped machine. A machine with the sentinel is not bootstrapped
again (a retried pod, a recreated Job). Pure: the controller creates what this returns.
"""

from __future__ import annotations

import copy
import hashlib
import shlex
from dataclasses import dataclass
from typing import Any, Literal

from mothership.api.bootstrap.v1beta2 import SUCCESS_SENTINEL
from mothership.render import names

Obj = dict[str, Any]
Purpose = Literal["provision", "clean-up"]
MOUNT_DIR = "/var/lib/bootstrap-data"
VOLUME = "bootstrap-data"
ENTRYPOINT, SCRIPT = "entrypoint.sh", "bootstrap.sh"
REMOTE_MACHINE_LABEL = "infrastructure.cluster.x-k8s.io/remote-machine"
CLUSTER_NAME_LABEL = names.CAPI_CLUSTER_NAME_LABEL
# Whose Job it is: a name from the template is the same for every RemoteMachine made from
# one RemoteMachineTemplate, and another machine's completed Job must not count as ours.
OWNER_UID_LABEL = "mothership.k0smotron.io/remote-machine-uid"
MAX_NAME = 63  # a Job's name becomes a label value of its pods


class ProvisionJobError(ValueError):
    """The template cannot make a Job; the message names the field and the fix."""


@dataclass(frozen=True)
class Machine:
    """Where the Job's ssh goes, from the RemoteMachine or its pooled machine."""

    address: str
    port: int = 22
    user: str = "root"
    use_sudo: bool = False
    working_dir: str = "/etc/k0smotron"

    @property
    def login(self) -> str:
        return f"{self.user}@{self.address}"

    @property
    def scp_host(self) -> str:
        """user@host for scp, IPv6 addresses in brackets (scp splits host:path at a colon)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.user}@{host}"


def job_name(template: Obj | None, cluster: str, remote_machine: str, purpose: Purpose) -> str:
    """The template's name, else k0smotron's `<cluster>-<remote machine>`; `-cleanup`
    after it for the clean-up. Shortened with a hash when too long for a Job."""
    base = ((template or {}).get("metadata") or {}).get("name") or f"{cluster}-{remote_machine}"
    name = f"{base}-cleanup" if purpose == "clean-up" else base
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9].rstrip('-.')}-{digest}"


def secret_name(job: str) -> str:
    """k0smotron's name for the Job's bootstrap data."""
    return f"{job}-job-bootstrap-data"


def _ssh(ssh_command: str, machine: Machine, remote: str) -> str:
    """A shell line running `remote` (a command line for the machine's shell) over ssh."""
    return f"{ssh_command} -p {machine.port} {shlex.quote(machine.login)} {shlex.quote(remote)}"


def _as_root(machine: Machine, command: str) -> str:
    quoted = shlex.quote(command)
    return f"sudo -n sh -c {quoted}" if machine.use_sudo else f"sh -c {quoted}"


def provision_entrypoint(machine: Machine, ssh_command: str, scp_command: str, run_id: str) -> str:
    """What the Job runs: skip a bootstrapped machine, else copy the script into the login's
    home (always writable), move it into workingDir as root, run it, check the sentinel."""
    uploaded = f"mothership-bootstrap-{run_id}.sh"
    script = f"{machine.working_dir.rstrip('/')}/bootstrap-{run_id}.sh"
    sentinel = f"test -e {shlex.quote(SUCCESS_SENTINEL)}"
    run = (
        f"mkdir -p {shlex.quote(machine.working_dir)} && "
        f"mv -f {shlex.quote(uploaded)} {shlex.quote(script)} && sh {shlex.quote(script)}"
    )
    target = shlex.quote(f"{machine.scp_host}:{uploaded}")
    return "\n".join(
        [
            "#!/bin/sh",
            f"# The bootstrap of {machine.login}, run by a Job the mothership operator made.",
            "set -u",
            f"if {_ssh(ssh_command, machine, sentinel)}; then",
            f'  echo "{machine.login} is bootstrapped already ({SUCCESS_SENTINEL})"; exit 0',
            "fi",
            f"{scp_command} -P {machine.port} {MOUNT_DIR}/{SCRIPT} {target} || {{",
            f'  echo "could not copy the bootstrap to {machine.login}"; exit 1; }}',
            f"{_ssh(ssh_command, machine, _as_root(machine, run))} || {{",
            '  status=$?; echo "the bootstrap exited $status"; exit "$status"; }',
            f"{_ssh(ssh_command, machine, sentinel)} || {{",
            f'  echo "the bootstrap ended without {SUCCESS_SENTINEL}"; exit 1; }}',
            f'echo "{machine.login} bootstrapped"',
            "",
        ]
    )


def clean_up_entrypoint(
    machine: Machine, ssh_command: str, commands: list[str], run_id: str
) -> str:
    """What the clean-up Job runs: the clean-up commands as root, then the sentinel and the
    bootstrap's script go, so the machine can be bootstrapped again."""
    script = f"{machine.working_dir.rstrip('/')}/bootstrap-{run_id}.sh"
    body = "set -e\n" + "\n".join(commands) + f"\nrm -f {SUCCESS_SENTINEL} {shlex.quote(script)}"
    return "\n".join(
        [
            "#!/bin/sh",
            f"# The clean-up of {machine.login}, run by a Job the mothership operator made.",
            "set -u",
            f"{_ssh(ssh_command, machine, _as_root(machine, body))} || {{",
            '  status=$?; echo "the clean-up exited $status"; exit "$status"; }',
            f'echo "{machine.login} cleaned up"',
            "",
        ]
    )


def validate_template(template: Obj | None) -> list[tuple[str, str]]:
    """(field path, problem and fix) for a jobSpecTemplate that cannot make a Job."""
    path = "spec.provisionJob.jobSpecTemplate"
    if not template:
        return [(path, "give a Job template whose first container has ssh, scp and a shell")]
    containers = (((template.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    if not containers or not isinstance(containers[0], dict) or not containers[0].get("image"):
        return [
            (
                f"{path}.spec.template.spec.containers",
                "give at least one container with an image that has ssh, scp and a shell",
            )
        ]
    restart = (template["spec"]["template"].get("spec") or {}).get("restartPolicy")
    if restart not in (None, "Never", "OnFailure"):
        return [
            (
                f"{path}.spec.template.spec.restartPolicy",
                f"a Job's pods restart Never or OnFailure, not {restart!r}",
            )
        ]
    return []


def render(
    *,
    purpose: Purpose,
    template: Obj | None,
    remote_machine: Obj,
    cluster: str,
    entrypoint: str,
    script: str | None = None,
) -> tuple[Obj, Obj]:
    """(Job, Secret). The Job is the user's template with the bootstrap volume mounted into
    its first container and the entrypoint as that container's args (its image's
    entrypoint, if any, gets the script's path, as k0smotron does). The provisioning Job
    is owned by the RemoteMachine (it goes with it); the clean-up Job is not (it runs
    while the RemoteMachine is being deleted) and the operator deletes it when done. The
    Secret gets its owner, the Job, from the caller once the Job exists."""
    problems = validate_template(template)
    if problems:
        raise ProvisionJobError("; ".join(f"{p}: {m}" for p, m in problems))
    assert template is not None
    meta = remote_machine["metadata"]
    name = job_name(template, cluster, meta["name"], purpose)
    labels = {
        **((template.get("metadata") or {}).get("labels") or {}),
        CLUSTER_NAME_LABEL: cluster,
        REMOTE_MACHINE_LABEL: meta["name"],
        OWNER_UID_LABEL: meta["uid"],
    }
    spec = copy.deepcopy(template["spec"])
    pod = spec["template"].setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    pod["volumes"] = [
        *(v for v in pod.get("volumes") or [] if v.get("name") != VOLUME),
        {
            "name": VOLUME,
            "secret": {"secretName": secret_name(name), "defaultMode": 0o500},
        },
    ]
    container = pod["containers"][0]
    container["volumeMounts"] = [
        *(m for m in container.get("volumeMounts") or [] if m.get("name") != VOLUME),
        {"name": VOLUME, "mountPath": MOUNT_DIR, "readOnly": True},
    ]
    container["args"] = [f"{MOUNT_DIR}/{ENTRYPOINT}"]
    # A failed run's output tail lands in the pod's status, where the operator reads it.
    container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    pod_labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
    pod_labels.update({CLUSTER_NAME_LABEL: cluster, REMOTE_MACHINE_LABEL: meta["name"]})
    job_meta: Obj = {
        **{k: v for k, v in (template.get("metadata") or {}).items() if k in ("annotations",)},
        "name": name,
        "namespace": meta["namespace"],
        "labels": labels,
    }
    if purpose == "provision":
        job_meta["ownerReferences"] = [
            {
                "apiVersion": remote_machine["apiVersion"],
                "kind": remote_machine["kind"],
                "name": meta["name"],
                "uid": meta["uid"],
            }
        ]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": spec}
    data = {ENTRYPOINT: entrypoint, **({SCRIPT: script} if script is not None else {})}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(name),
            "namespace": meta["namespace"],
            "labels": {CLUSTER_NAME_LABEL: cluster, REMOTE_MACHINE_LABEL: meta["name"]},
        },
        "type": "Opaque",
        "stringData": data,
    }
    return job, secret


def belongs_to(job: Obj, remote_machine: Obj) -> bool:
    """Whether this Job was made for this RemoteMachine (and not for another one whose
    template gave the same name)."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(OWNER_UID_LABEL) == remote_machine["metadata"]["uid"])


def owned_by(secret: Obj, job: Obj) -> Obj:
    """The Secret with the created Job as its owner: it goes when the Job goes."""
    meta = job["metadata"]
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"]}
    return {**secret, "metadata": {**secret["metadata"], "ownerReferences": [owner]}}


Outcome = Literal["running", "complete", "failed"]


def outcome(job: Obj, pods: list[Obj]) -> tuple[Outcome, str]:
    """How the Job went, and for a failed one why: its condition and the output tail of
    its last failed pod (the container's termination message)."""
    conditions = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []}
    if (conditions.get("Complete") or {}).get("status") == "True":
        return "complete", ""
    failed = conditions.get("Failed") or {}
    if failed.get("status") != "True":
        return "running", ""
    said = ""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            ended = (status.get("state") or {}).get("terminated") or {}
            if ended.get("exitCode"):
                said = f"exit {ended['exitCode']}: {(ended.get('message') or '').strip()[-600:]}"
    reason = f"{failed.get('reason') or 'Failed'}: {failed.get('message') or ''}".strip()
    return "failed", f"{reason}; {said}" if said else reason
