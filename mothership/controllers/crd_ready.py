"""Whether a CustomResourceDefinition can be used yet, not only whether it is Established.

`Established` says the API server serves the kind; right after it, a LIST of the kind can
still answer 429 "storage is (re)initializing" while the API server fills its watch cache
(Kubernetes >= 1.34). client-go retries that; lightkube and our own callers do not, so
whoever waits for CRDs before starting work (the local mothership before its operator
and the bench that follows) waits for one LIST to answer too. Any other refusal counts as
answering: the watch cache is up, and what the error means is the caller's to find out.
"""

from __future__ import annotations

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition


def not_ready(client: Client, names: list[str]) -> list[str]:
    """The CRDs among `names` that are not Established or not listable yet."""
    waiting = []
    for name in names:
        crd = client.get(CustomResourceDefinition, name)
        conditions = (crd.status.conditions if crd.status else None) or []
        established = any(c.type == "Established" and c.status == "True" for c in conditions)
        if not (established and listable(client, crd)):
            waiting.append(name)
    return waiting


def listable(client: Client, crd: CustomResourceDefinition) -> bool:
    """One LIST of at most one object of the CRD's storage version answers (no 429)."""
    spec = crd.spec
    version = next((v.name for v in spec.versions if v.storage), spec.versions[0].name)
    make = create_namespaced_resource if spec.scope == "Namespaced" else create_global_resource
    res = make(spec.group, version, spec.names.kind, spec.names.plural)
    try:
        next(iter(client.list(res, chunk_size=1)), None)
    except ApiError as exc:
        return exc.status.code != 429
    return True
