"""The RemoteMachine and RemoteCluster reconcilers: Cluster API infrastructure made of
machines that exist already, provisioned over SSH.

A RemoteMachine owned by a Machine waits for the Machine's bootstrap data, takes its
connection from its spec or reserves a free PooledRemoteMachine of its pool, runs the
bootstrap (render/worker_bootstrap.to_shell of the cloud-config) on the machine, and checks
Cluster API's success sentinel there. A machine whose sentinel exists is never bootstrapped
again, and the bootstrap runs detached on the machine (remote_ssh.py): an operator restart or
a connection cut mid-way follows the run already going instead of starting another. An
unreachable machine is retried with a growing delay. Then the providerID
(`remote-machine://address:port`) goes on the RemoteMachine and on the tenant's Node of the
same name, which is how Cluster API links the Machine to its Node. When the Machine goes, the
clean-up commands (default: the join's own `mothership-node-leave`) run and a pooled machine
is returned to its pool. With `provisionJob` the bootstrap and the clean-up run from Jobs of
the user's template instead of the operator's SSH client (remote_job.py), and the Job's
outcome is the machine's.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shlex
import time
from dataclasses import dataclass
from typing import Any

import kopf
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Node, Secret
from lightkube.types import PatchType

from mothership.api.bootstrap.v1beta2 import SUCCESS_SENTINEL
from mothership.api.infrastructure.v1beta2 import (
    CONDITION_BOOTSTRAP_EXEC,
    DEFAULT_WORKING_DIR,
    GROUP,
    MACHINE_FINALIZER,
)
from mothership.controllers import events, metrics, remote_job, remote_ssh, tenant
from mothership.controllers.apply import get_or_none, owner_name
from mothership.controllers.conditions import Condition, merge
from mothership.controllers.runtime import runtime
from mothership.render import provision_job, worker_bootstrap
from mothership.render.node_join import LEAVE_COMMAND

log = logging.getLogger("mothership.remotemachine")

VERSION = "v1beta2"
PLURAL, KIND = "remotemachines", "RemoteMachine"
RemoteMachineResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
PooledResource = create_namespaced_resource(
    GROUP, VERSION, "PooledRemoteMachine", "pooledremotemachines"
)
RemoteClusterResource = create_namespaced_resource(
    GROUP, VERSION, "RemoteCluster", "remoteclusters"
)
MachineResource = create_namespaced_resource("cluster.x-k8s.io", "v1beta2", "Machine", "machines")
MERGE = PatchType.MERGE
DEFAULT_CLEAN_UP = f"if [ -x {LEAVE_COMMAND} ]; then {LEAVE_COMMAND}; fi"


class NotYet(Exception):
    def __init__(
        self, reason: str, message: str, warn: bool = False, recheck: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason, self.warn, self.recheck = reason, warn, recheck


# -- handlers --------------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_remote_machine_event(type: str, body: kopf.Body, **_: Any) -> None:
    if type != "DELETED":
        await reconcile(dict(body))


@kopf.on.event("cluster.x-k8s.io", "v1beta2", "machines")
async def on_machine_event(type: str, body: kopf.Body, **_: Any) -> None:
    """The Machine got its bootstrap data: its RemoteMachine can be provisioned."""
    spec = body.get("spec") or {}
    ref = spec.get("infrastructureRef") or {}
    if type == "DELETED" or ref.get("apiGroup") != GROUP or ref.get("kind") != KIND:
        return
    if (spec.get("bootstrap") or {}).get("dataSecretName"):
        rm = await get_or_none(
            runtime().client, RemoteMachineResource, ref["name"], body["metadata"]["namespace"]
        )
        if rm is not None:
            await reconcile(rm.to_dict())


@kopf.on.event(GROUP, VERSION, "remoteclusters")
async def on_remote_cluster_event(type: str, body: kopf.Body, **_: Any) -> None:
    """Nothing to provision for a hosted control plane: report the infrastructure ready."""
    if type == "DELETED":
        return
    meta = body["metadata"]
    previous = dict(body.get("status") or {})
    cond = Condition("Ready", True, "Ready", "machines exist already; nothing to provision")
    new = {
        "initialization": {"provisioned": True},
        "conditions": merge(previous.get("conditions"), [cond], meta.get("generation")),
    }
    if previous != new:
        await runtime().client.patch(
            RemoteClusterResource.Status, meta["name"], {"status": new},
            namespace=meta["namespace"], patch_type=MERGE,
        )  # fmt: skip
        metrics.WRITES.labels(kind="RemoteClusterStatus").inc()


# -- reconcile -------------------------------------------------------------------------------


# An unreachable machine is retried sooner than the resync at first, then ever more rarely
# (per RemoteMachine and generation: an edit, say a corrected address, retries at once).
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 5.0, 300.0


@dataclass
class _Backoff:
    failures: int
    generation: int | None
    due: float  # monotonic; other triggers wait for the scheduled retry until then
    handle: asyncio.TimerHandle


_BACKOFF: dict[tuple[str, str], _Backoff] = {}
_RETRIES: set[asyncio.Task[None]] = set()


def retry_delay(failures: int) -> float:
    """Seconds before the next attempt after `failures` failures in a row."""
    return float(min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** max(0, failures - 1)))


def _back_off(key: tuple[str, str], generation: int | None) -> float:
    held = _BACKOFF.get(key)
    failures = held.failures + 1 if held and held.generation == generation else 1
    delay = retry_delay(failures)
    _schedule(key, failures, generation, delay)
    return delay


def _schedule(key: tuple[str, str], failures: int, generation: int | None, delay: float) -> None:
    """Reconcile again after `delay`; other triggers wait for it until then."""
    held = _BACKOFF.pop(key, None)
    if held:
        held.handle.cancel()
    loop = asyncio.get_running_loop()

    def retry() -> None:
        task = loop.create_task(_retry(key))
        _RETRIES.add(task)
        task.add_done_callback(_RETRIES.discard)

    handle = loop.call_later(delay, retry)
    _BACKOFF[key] = _Backoff(failures, generation, time.monotonic() + delay, handle)


def _forget(key: tuple[str, str]) -> None:
    held = _BACKOFF.pop(key, None)
    if held:
        held.handle.cancel()


def _waiting_out(key: tuple[str, str], generation: int | None) -> bool:
    held = _BACKOFF.get(key)
    return bool(held and held.generation == generation and time.monotonic() < held.due)


async def _retry(key: tuple[str, str]) -> None:
    rt = runtime()
    try:
        obj = await get_or_none(rt.client, RemoteMachineResource, key[1], key[0])
        if obj is not None:
            await reconcile(obj.to_dict(), retry=True)
    except Exception:
        log.exception("retry of RemoteMachine %s/%s failed", *key)


async def reconcile(body: dict[str, Any], retry: bool = False) -> None:
    rt = runtime()
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    key = (ns, name)
    async with rt.lock(("remotemachine", ns, name)):  # type: ignore[arg-type]
        # Another trigger may have provisioned it while this one waited for the lock.
        fresh = await get_or_none(rt.client, RemoteMachineResource, name, ns)
        if fresh is None:
            _forget(key)
            return
        body = fresh.to_dict()
        generation = body["metadata"].get("generation")
        if not retry and _waiting_out(key, generation):
            return  # the scheduled retry comes; the machine was unreachable moments ago
        try:
            if body["metadata"].get("deletionTimestamp"):
                await finalize(body)
            else:
                await _reconcile(body)
            _forget(key)
            metrics.RECONCILES.labels(kind=KIND, result="ok").inc()
        except remote_ssh.SSHError as exc:
            # Unreachable or refused: said on the object and as an event, retried with backoff.
            delay = _back_off(key, generation)
            message = f"{exc}; retrying in {delay:.0f}s"
            events.warn(body, reason="MachineUnreachable", message=message)
            await _write_status(body, Condition("Ready", False, "MachineUnreachable", message))
            metrics.RECONCILES.labels(kind=KIND, result="waiting").inc()
        except NotYet as exc:
            _forget(key)
            if exc.recheck is not None:  # a Job runs for it: look again soon
                _schedule(key, 0, generation, exc.recheck)
            if exc.warn:
                events.warn(body, reason=exc.reason, message=str(exc))
            await _write_status(body, Condition("Ready", False, exc.reason, str(exc)))
            metrics.RECONCILES.labels(kind=KIND, result="waiting").inc()
        except ApiError as exc:
            if exc.status.code not in (404, 409):
                raise


def _provisioned(body: dict[str, Any]) -> bool:
    return bool(((body.get("status") or {}).get("initialization") or {}).get("provisioned"))


async def _reconcile(body: dict[str, Any]) -> None:
    rt = runtime()
    meta = body["metadata"]
    ns = meta["namespace"]
    if MACHINE_FINALIZER not in (meta.get("finalizers") or []):
        await _patch(body, {"metadata": {"finalizers": [*(meta.get("finalizers") or []),
                                                        MACHINE_FINALIZER],
                                         "resourceVersion": meta["resourceVersion"]}})  # fmt: skip
        return  # the write's event brings us back
    machine_name = owner_name(body, "Machine", "cluster.x-k8s.io")
    if machine_name is None:
        raise NotYet("WaitingForMachine", "waiting for Cluster API to set the owning Machine")
    machine = await get_or_none(rt.client, MachineResource, machine_name, ns)
    if machine is None:
        raise NotYet("WaitingForMachine", f"Machine {machine_name} not found")
    machine_obj = machine.to_dict()
    machine_spec = machine_obj.get("spec") or {}
    if _provisioned(body):
        await _link_node(body, machine_obj, machine_name)
        return
    data_secret = (machine_spec.get("bootstrap") or {}).get("dataSecretName")
    if not data_secret:
        raise NotYet("WaitingForBootstrapData", f"Machine {machine_name} has no bootstrap data yet")
    conn = await _connection(body)
    if (body.get("spec") or {}).get("provisionJob"):
        cluster = str(machine_spec.get("clusterName") or "")
        await _provision_by_job(body, conn, cluster, data_secret)
        await _provisioned_as(body, machine_obj, machine_name, _job_machine(conn))
        return
    target = await _target(ns, conn)
    if await remote_ssh.exists(target, SUCCESS_SENTINEL):
        log.info(
            "%s/%s: %s was bootstrapped already; not running it again", ns, meta["name"], target
        )
    else:
        secret = await get_or_none(rt.client, Secret, data_secret, ns)
        if secret is None or "value" not in (secret.data or {}):
            raise NotYet("WaitingForBootstrapData", f"Secret {data_secret} has no value yet")
        script = worker_bootstrap.to_shell(base64.b64decode(secret.data["value"]).decode())
        status, output = await remote_ssh.bootstrap(
            target, script, working_dir=_working_dir(conn), run_id=meta["uid"]
        )
        if status != 0 or not await remote_ssh.exists(target, SUCCESS_SENTINEL):
            raise NotYet(
                "BootstrapFailed",
                f"bootstrap on {target} exited {status} without {SUCCESS_SENTINEL}: "
                + output[-600:],
                warn=True,
            )
        events.info(body, reason=CONDITION_BOOTSTRAP_EXEC, message=f"bootstrapped {target}")
    await _provisioned_as(body, machine_obj, machine_name, target)


async def _provisioned_as(
    body: dict[str, Any],
    machine_obj: dict[str, Any],
    machine_name: str,
    target: remote_ssh.Target | provision_job.Machine,
) -> None:
    """The providerID, the provisioned status, and the Node linked."""
    provider_id = (body.get("spec") or {}).get("providerID") or (
        f"remote-machine://{target.address}:{target.port}"
    )
    if (body.get("spec") or {}).get("providerID") != provider_id:
        written = await _patch(body, {"spec": {"providerID": provider_id}})
        body = written.to_dict()
    previous = body.get("status") or {}
    conds = [
        Condition(CONDITION_BOOTSTRAP_EXEC, True, CONDITION_BOOTSTRAP_EXEC, f"on {target}"),
        Condition("Ready", True, "Ready", f"provisioned as {provider_id}"),
    ]
    new = {
        "initialization": {"provisioned": True},
        "addresses": [{"type": "InternalIP", "address": target.address}],
        "conditions": merge(previous.get("conditions"), conds, body["metadata"].get("generation")),
    }
    await _patch_status(body, new)
    await _link_node(body, machine_obj, machine_name)


def _working_dir(conn: dict[str, Any]) -> str:
    return str(conn.get("workingDir") or DEFAULT_WORKING_DIR)


def _job_machine(conn: dict[str, Any]) -> provision_job.Machine:
    return provision_job.Machine(
        address=str(conn["address"]),
        port=int(conn.get("port") or 22),
        user=str(conn.get("user") or "root"),
        use_sudo=bool(conn.get("useSudo")),
        working_dir=_working_dir(conn),
    )


def _job_commands(body: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """(jobSpecTemplate, sshCommand, scpCommand) with k0smotron's defaults."""
    spec = (body.get("spec") or {}).get("provisionJob") or {}
    return (
        spec.get("jobSpecTemplate") or {},
        str(spec.get("sshCommand") or "ssh"),
        str(spec.get("scpCommand") or "scp"),
    )


async def _run_job(
    body: dict[str, Any],
    purpose: provision_job.Purpose,
    cluster: str,
    entry: str,
    script: str | None = None,
) -> str:
    """Run (or follow) the Job; its name once it has completed. NotYet while it runs, and
    when it failed (looked at again now and then: deleting the failed Job retries)."""
    template, _, _ = _job_commands(body)
    try:
        job, secret = provision_job.render(
            purpose=purpose, template=template, remote_machine=body, cluster=cluster,
            entrypoint=entry, script=script,
        )  # fmt: skip
    except provision_job.ProvisionJobError as exc:
        raise NotYet("InvalidSpec", str(exc), warn=True) from exc
    name = job["metadata"]["name"]
    try:
        state, message = await remote_job.run(job, secret, body)
    except remote_job.ForeignJob as exc:
        raise NotYet("JobNameTaken", str(exc), warn=True) from exc
    what = "bootstrap" if purpose == "provision" else "clean-up"
    if state == "running":
        recheck = remote_job.RECHECK_SECONDS
        raise NotYet("JobRunning", f"Job {name} runs the {what}", recheck=recheck)
    if state == "failed":
        reason = "BootstrapFailed" if purpose == "provision" else "CleanUpFailed"
        raise NotYet(
            reason, f"Job {name} failed: {message}; delete the Job to run the {what} again",
            warn=True, recheck=remote_job.FAILED_RECHECK_SECONDS,
        )  # fmt: skip
    return name


async def _provision_by_job(
    body: dict[str, Any], conn: dict[str, Any], cluster: str, data_secret: str
) -> None:
    meta = body["metadata"]
    secret = await get_or_none(runtime().client, Secret, data_secret, meta["namespace"])
    if secret is None or "value" not in (secret.data or {}):
        raise NotYet("WaitingForBootstrapData", f"Secret {data_secret} has no value yet")
    script = worker_bootstrap.to_shell(base64.b64decode(secret.data["value"]).decode())
    _, ssh_command, scp_command = _job_commands(body)
    machine = _job_machine(conn)
    entry = provision_job.provision_entrypoint(machine, ssh_command, scp_command, meta["uid"])
    name = await _run_job(body, "provision", cluster, entry, script)
    if not _provisioned(body):
        events.info(body, reason=CONDITION_BOOTSTRAP_EXEC,
                    message=f"Job {name} bootstrapped {machine.login}")  # fmt: skip


async def _connection(body: dict[str, Any]) -> dict[str, Any]:
    """The SSH settings: the RemoteMachine's own, or those of the pooled machine it holds
    (reserving a free one of its pool first)."""
    rt = runtime()
    meta = body["metadata"]
    spec = body.get("spec") or {}
    pool = spec.get("pool")
    if not pool:
        if not spec.get("address"):
            raise NotYet("InvalidSpec", "spec.address is needed (or spec.pool)")
        if not spec.get("provisionJob") and not (spec.get("sshKeyRef") or {}).get("name"):
            raise NotYet("InvalidSpec", "spec.sshKeyRef.name is needed (or spec.provisionJob)")
        return dict(spec)
    free = None
    async for pooled in rt.client.list(PooledResource, namespace=meta["namespace"]):
        obj = pooled.to_dict()
        if (obj.get("spec") or {}).get("pool") != pool:
            continue
        status = obj.get("status") or {}
        holder = status.get("machineRef") or {}
        if status.get("reserved") and holder == {
            "name": meta["name"],
            "namespace": meta["namespace"],
        }:
            return dict(obj["spec"]["machine"])
        if not status.get("reserved") and free is None:
            free = obj
    if free is None:
        raise NotYet("NoFreeMachine", f"pool {pool!r} has no free PooledRemoteMachine", warn=True)
    reserve = {
        "metadata": {"resourceVersion": free["metadata"]["resourceVersion"]},
        "status": {"reserved": True,
                   "machineRef": {"name": meta["name"], "namespace": meta["namespace"]}},
    }  # fmt: skip
    await rt.client.patch(
        PooledResource.Status,
        free["metadata"]["name"],
        reserve,
        namespace=meta["namespace"],
        patch_type=MERGE,
    )  # fmt: skip  (409: someone else took it; the next reconcile picks another)
    events.info(body, reason="MachineReserved", message=f"{free['metadata']['name']} of {pool}")
    return dict(free["spec"]["machine"])


async def _target(ns: str, conn: dict[str, Any]) -> remote_ssh.Target:
    key_name = (conn.get("sshKeyRef") or {}).get("name", "")
    secret = await get_or_none(runtime().client, Secret, key_name, ns)
    if secret is None or "value" not in (secret.data or {}):
        raise NotYet(
            "MissingSSHKey",
            f"sshKeyRef: Secret {ns}/{key_name} with the private key under `value` not found",
        )
    return remote_ssh.Target(
        address=str(conn["address"]),
        port=int(conn.get("port") or 22),
        user=str(conn.get("user") or "root"),
        key_pem=base64.b64decode(secret.data["value"]).decode(),
        use_sudo=bool(conn.get("useSudo")),
    )


async def _link_node(body: dict[str, Any], machine: dict[str, Any], node_name: str) -> None:
    """Give the tenant's Node the providerID: Cluster API finds a Machine's Node by it.
    Once Cluster API has found it (the Machine's nodeRef), there is nothing left to do."""
    provider_id = (body.get("spec") or {}).get("providerID")
    cluster = (machine.get("spec") or {}).get("clusterName")
    if not provider_id or not cluster or (machine.get("status") or {}).get("nodeRef"):
        return
    rt = runtime()
    try:
        kubeconfig = await tenant.kubeconfig_text(rt, (body["metadata"]["namespace"], cluster))
    except (ApiError, KeyError):
        return
    client = tenant.client_for(kubeconfig, timeout=10.0)
    try:
        node = await get_or_none(client, Node, node_name, "")
        if node is None or (node.spec and node.spec.providerID):
            return
        await client.patch(Node, node_name, {"spec": {"providerID": provider_id}})
        log.info("Node %s of %s: providerID %s", node_name, cluster, provider_id)
    except Exception as exc:  # the tenant is briefly unreachable: the next resync retries
        log.info("Node %s of %s not linked yet: %s", node_name, cluster, exc)
    finally:
        await client.close()


async def finalize(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    if MACHINE_FINALIZER not in (meta.get("finalizers") or []):
        return
    spec = body.get("spec") or {}
    if _provisioned(body) and spec.get("provisionJob"):
        conn = await _connection(body)
        machine = _job_machine(conn)
        _, ssh_command, _ = _job_commands(body)
        commands = conn.get("cleanUpCommands") or [DEFAULT_CLEAN_UP]
        entry = provision_job.clean_up_entrypoint(machine, ssh_command, commands, meta["uid"])
        cluster = (meta.get("labels") or {}).get(provision_job.CLUSTER_NAME_LABEL, "")
        name = await _run_job(body, "clean-up", cluster or meta["name"], entry)
        await remote_job.delete(name, meta["namespace"])
        events.info(body, reason="CleanedUp", message=f"Job {name} cleaned {machine.login}")
    elif _provisioned(body):
        conn = await _connection(body)
        target = await _target(meta["namespace"], conn)
        commands = conn.get("cleanUpCommands") or [DEFAULT_CLEAN_UP]
        run_files = shlex.quote(remote_ssh.run_files(_working_dir(conn), meta["uid"]))
        script = "set -e\n" + "\n".join(commands) + f"\nrm -f {SUCCESS_SENTINEL} {run_files}.*\n"
        status, output = await remote_ssh.run(target, "sh -s", stdin=script, timeout=300)
        if status != 0:
            raise NotYet("CleanUpFailed", f"clean-up on {target} exited {status}: {output[-600:]}",
                         warn=True)  # fmt: skip
        events.info(body, reason="CleanedUp", message=f"{target}")
    if spec.get("pool"):
        await _release(body)
    finalizers = [f for f in meta["finalizers"] if f != MACHINE_FINALIZER]
    await _patch(body, {"metadata": {"finalizers": finalizers,
                                     "resourceVersion": meta["resourceVersion"]}})  # fmt: skip


async def _release(body: dict[str, Any]) -> None:
    rt = runtime()
    meta = body["metadata"]
    holder = {"name": meta["name"], "namespace": meta["namespace"]}
    async for pooled in rt.client.list(PooledResource, namespace=meta["namespace"]):
        obj = pooled.to_dict()
        if (obj.get("status") or {}).get("machineRef") == holder:
            await rt.client.patch(
                PooledResource.Status, obj["metadata"]["name"],
                {"status": {"reserved": False, "machineRef": None}},
                namespace=meta["namespace"], patch_type=MERGE,
            )  # fmt: skip
            events.info(body, reason="MachineReleased", message=obj["metadata"]["name"])


async def _patch(body: dict[str, Any], patch: dict[str, Any]) -> Any:
    meta = body["metadata"]
    written = await runtime().client.patch(
        RemoteMachineResource, meta["name"], patch, namespace=meta["namespace"], patch_type=MERGE
    )
    metrics.WRITES.labels(kind=KIND).inc()
    return written


async def _patch_status(body: dict[str, Any], new: dict[str, Any]) -> None:
    if (body.get("status") or {}) == new:
        return
    meta = body["metadata"]
    await runtime().client.patch(
        RemoteMachineResource.Status, meta["name"], {"status": new},
        namespace=meta["namespace"], patch_type=MERGE,
    )  # fmt: skip
    metrics.WRITES.labels(kind=f"{KIND}Status").inc()


async def _write_status(body: dict[str, Any], cond: Condition) -> None:
    previous = dict(body.get("status") or {})
    conds = merge(previous.get("conditions"), [cond], body["metadata"].get("generation"))
    kept = [c for c in previous.get("conditions") or [] if c.get("type") != cond.type]
    await _patch_status(body, {**previous, "conditions": [*kept, *conds]})
