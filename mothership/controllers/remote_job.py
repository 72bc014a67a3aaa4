"""A RemoteMachine's provisioning or clean-up run as a Job (render/provision_job.py).

The Job is created first and its Secret second, owned by the Job, so both go together and
a Job the user deletes (to retry a failed run) takes its data with it. While a Job runs,
the RemoteMachine reconciler looks again every few seconds instead of watching every Job
in the mothership for the few machines provisioned this way.
"""

from __future__ import annotations

from typing import Any

from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Secret
from lightkube.types import CascadeType

from mothership.controllers import metrics
from mothership.controllers.apply import get_or_none
from mothership.controllers.runtime import runtime
from mothership.render import provision_job

RECHECK_SECONDS = 3.0
# A failed Job is looked at now and then: once the user deletes it, the run starts again.
FAILED_RECHECK_SECONDS = 60.0
FIELD_MANAGER = "mothership-operator"


class ForeignJob(Exception):
    """A Job of the name we would use exists for another RemoteMachine."""


async def run(
    job: dict[str, Any], secret: dict[str, Any], remote_machine: dict[str, Any]
) -> tuple[provision_job.Outcome, str]:
    """Create the Job (and then its Secret) unless it exists; how it went so far."""
    client = runtime().client
    meta = job["metadata"]
    live = await get_or_none(client, Job, meta["name"], meta["namespace"])
    if live is None:
        try:
            live = await client.create(from_dict(job), field_manager=FIELD_MANAGER)
            metrics.WRITES.labels(kind="Job").inc()
        except ApiError as exc:
            if exc.status.code != 409:
                raise
            live = await client.get(Job, meta["name"], namespace=meta["namespace"])
    created = live.to_dict()
    if not provision_job.belongs_to(created, remote_machine):
        raise ForeignJob(
            f"Job {meta['name']} was made for another RemoteMachine: the name comes from "
            "spec.provisionJob.jobSpecTemplate.metadata.name, which every RemoteMachine of a "
            "template shares; leave it out (each machine then gets <cluster>-<machine>)"
        )
    pods = [
        p.to_dict()
        async for p in client.list(
            Pod, namespace=meta["namespace"], labels={"job-name": meta["name"]}
        )
    ]
    state, message = provision_job.outcome(created, pods)
    if state == "running":  # its pods wait for the Secret until it is there
        name = secret["metadata"]["name"]
        if await get_or_none(client, Secret, name, meta["namespace"]) is None:
            owned = provision_job.owned_by(secret, created)
            try:
                await client.create(from_dict(owned), field_manager=FIELD_MANAGER)
                metrics.WRITES.labels(kind="Secret").inc()
            except ApiError as exc:
                if exc.status.code != 409:
                    raise
    return state, message


async def delete(name: str, namespace: str) -> None:
    """The Job, its pods and (by ownership) its Secret."""
    try:
        await runtime().client.delete(
            Job, name, namespace=namespace, cascade=CascadeType.BACKGROUND
        )
        metrics.WRITES.labels(kind="Job").inc()
    except ApiError as exc:
        if exc.status.code != 404:
            raise
