"""Admission rules for the Cluster API providers' kinds, with field paths and the fix.

- K0smotronControlPlane: its spec becomes a k0smotron.io Cluster, so the Cluster's rules
  apply as they are (versions, storage, service, node port clashes with other Clusters but
  its own hosted one), except the generated-names check: the hosted Cluster is named after
  the Cluster API Cluster, which is not known until Cluster API adopts the control plane.
- K0sWorkerConfig: `args` must be flags mothership applies; files need a path and at most one
  content source; formats other than cloud-config/linux are accepted (k0smotron manifests
  apply unchanged) with a warning that no data will be written for them.
- RemoteMachine: a machine comes from `pool` or from `address` + `sshKeyRef` (or a
  `provisionJob`, whose Job template must be able to make a Job), not both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mothership.api.controlplane.convert import convert as convert_control_plane
from mothership.render.node_join import JoinError
from mothership.render.provision_job import validate_template
from mothership.render.worker_bootstrap import worker_options
from mothership.webhooks.validate import Problem, Result, validate_cluster

Obj = dict[str, Any]
KINDS = ("K0smotronControlPlane", "K0sWorkerConfig", "RemoteMachine")


def validate(obj: Obj, old: Obj | None = None, others: Iterable[Obj] = ()) -> Result:
    kind = obj.get("kind")
    if old is not None and (
        (obj.get("metadata") or {}).get("deletionTimestamp") or obj.get("spec") == old.get("spec")
    ):
        return Result([], [])  # finalizer and metadata edits always pass (ratcheting)
    if kind == "K0smotronControlPlane":
        return _control_plane(obj, old, others)
    if kind == "K0sWorkerConfig":
        return _worker_config(obj)
    if kind == "RemoteMachine":
        return _remote_machine(obj)
    raise ValueError(f"no validation rules for kind {kind!r}")


def _as_cluster(cp: Obj) -> Obj:
    """The k0smotron.io Cluster the control plane's spec describes, in the same version."""
    version = str(cp.get("apiVersion", "")).rpartition("/")[2]
    v2 = convert_control_plane(cp, "v1beta2") if version != "v1beta2" else cp
    cluster = {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {k: v for k, v in (v2.get("metadata") or {}).items() if k != "annotations"},
        "spec": v2.get("spec") or {},
    }
    if version == "v1beta1":  # field paths in the spelling the user wrote
        from mothership.api.k0smotron import convert as convert_cluster

        return convert_cluster(cluster, "v1beta1")
    return cluster


def _control_plane(obj: Obj, old: Obj | None, others: Iterable[Obj]) -> Result:
    uid = (obj.get("metadata") or {}).get("uid")

    def not_its_own(other: Obj) -> bool:
        refs = (other.get("metadata") or {}).get("ownerReferences") or []
        return not uid or not any(r.get("uid") == uid for r in refs)

    own = [o for o in others if not_its_own(o)]
    return validate_cluster(
        _as_cluster(obj), _as_cluster(old) if old is not None else None, own, check_names=False
    )


def _worker_config(obj: Obj) -> Result:
    spec = obj.get("spec") or {}
    errors: list[Problem] = []
    warnings: list[Problem] = []
    try:
        worker_options(spec.get("args"), node_name="")
    except JoinError as exc:
        where, _, message = str(exc).partition(": ")
        errors.append(Problem(where, message))
    for i, f in enumerate(spec.get("files") or []):
        f = f if isinstance(f, dict) else {}
        file_path = f.get("path")
        if not isinstance(file_path, str) or not file_path.startswith("/"):
            errors.append(Problem(f"spec.files[{i}].path", "give the file's absolute path"))
        source = f.get("contentFrom") or {}
        if source and len([k for k in ("secretRef", "configMapRef") if source.get(k)]) != 1:
            errors.append(
                Problem(
                    f"spec.files[{i}].contentFrom", "give exactly one of secretRef, configMapRef"
                )
            )
        if source and f.get("content"):
            errors.append(
                Problem(f"spec.files[{i}].content", "give content or contentFrom, not both")
            )
    provisioner = spec.get("provisioner") or {}
    kind, platform = provisioner.get("type", "cloud-config"), provisioner.get("platform", "linux")
    if (kind, platform) != ("cloud-config", "linux"):
        warnings.append(
            Problem(
                "spec.provisioner",
                f"{kind} for {platform} is accepted but mothership writes bootstrap data only as "
                "cloud-config for linux; the config will report UnsupportedFormat",
            )
        )
    return Result(errors, warnings)


def _remote_machine(obj: Obj) -> Result:
    spec = obj.get("spec") or {}
    errors: list[Problem] = []
    if spec.get("pool"):
        if spec.get("address"):
            errors.append(Problem("spec.address", "give spec.pool or spec.address, not both"))
    else:
        if not spec.get("address"):
            errors.append(
                Problem("spec.address", "give the machine's address, or spec.pool to take one")
            )
        if not spec.get("provisionJob") and not (spec.get("sshKeyRef") or {}).get("name"):
            errors.append(
                Problem(
                    "spec.sshKeyRef.name",
                    "name the Secret with the SSH private key (key `value`), or give "
                    "spec.provisionJob",
                )
            )
    if spec.get("provisionJob"):
        template = spec["provisionJob"].get("jobSpecTemplate")
        errors.extend(Problem(path, fix) for path, fix in validate_template(template))
    return Result(errors, [])
