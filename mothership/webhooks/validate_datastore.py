"""Admission rules for mothership.io DataStores, and for a Cluster's reference to one.

The CRD schema checks the driver enum, that endpoints has an item and that the Secret
reference is complete; these rules add what it cannot say well: an endpoint is a bare
``host`` or ``host:port`` (no scheme, no spaces, a real port), the Secret's name and namespace
are names the API server would accept, and the driver stays what it was (the tenants'
databases live in that server). Every message names the field and the fix, as the Cluster
rules do (:mod:`.validate`), which use :func:`data_store_ref` for ``spec.storage.kine``.
"""

from __future__ import annotations

import re
from typing import Any, get_args

from mothership.api.k0smotron.v1beta2 import ReclaimPolicy
from mothership.api.mothership.v1alpha1 import (
    DEFAULT_PORTS,
    DRIVERS,
    TLS_CA_CERT_KEY,
    TLS_CA_KEY_KEY,
    split_endpoint,
)
from mothership.webhooks.findings import Check, Obj, Paths, Result, show, sub

KIND = "DataStore"
RECLAIM_POLICIES: tuple[str, ...] = get_args(ReclaimPolicy)

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_1123_LABEL = re.compile(rf"^{_DNS_LABEL}$")
_DNS_1123_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")


def is_dns1123_subdomain(value: Any) -> bool:
    """What the API server accepts as the name of most objects (a DataStore, a Secret)."""
    return isinstance(value, str) and len(value) <= 253 and bool(_DNS_1123_SUBDOMAIN.match(value))


def is_dns1123_label(value: Any) -> bool:
    """What the API server accepts as a namespace name."""
    return isinstance(value, str) and len(value) <= 63 and bool(_DNS_1123_LABEL.match(value))


def name_problem(value: Any, *, label: bool = False) -> str | None:
    """Why ``value`` is no DNS-1123 subdomain (or label), with the fix; None when it is one."""
    ok = is_dns1123_label(value) if label else is_dns1123_subdomain(value)
    if ok:
        return None
    what, chars = (
        ("DNS-1123 label", 'lowercase letters, digits and "-" (at most 63)')
        if label
        else ("DNS-1123 subdomain", 'lowercase letters, digits, "-" and "." (at most 253)')
    )
    if not isinstance(value, str) or not value:
        return f"required; give a {what}"
    return (
        f"{show(value)} is not a valid name (a {what}); use {chars}, starting and ending "
        "with a letter or digit"
    )


# --- DataStore ----------------------------------------------------------------------------------


def validate_datastore(obj: Obj, old: Obj | None = None) -> Result:
    """Validate a DataStore (mothership.io/v1alpha1); ``old`` only on UPDATE."""
    if obj.get("kind") != KIND:
        raise ValueError(f"no DataStore rules for kind {obj.get('kind')!r}")
    if _exempt(obj, old):
        return Result([], [])
    check = Check(Paths(str(obj.get("apiVersion"))))
    spec = sub(obj, "spec")
    old_spec = sub(old, "spec") if old is not None else None
    driver = spec.get("driver")
    driver_known = driver in DRIVERS
    if not driver_known:
        _driver(check, driver)
    endpoints(check, spec.get("endpoints"), str(driver) if driver_known else None)
    admin_secret_ref(check, spec.get("adminSecretRef"))
    if driver_known:
        tls(check, spec.get("tls"), str(driver))
    if old_spec is not None:
        old_driver = old_spec.get("driver")
        if old_driver in DRIVERS and driver != old_driver:
            check.error(
                "spec.driver",
                f"cannot change from {old_driver} to {driver}: the tenants' databases "
                f"live in that {old_driver} server; keep {old_driver}, or create another "
                "DataStore for the other server",
            )
    return Result(check.errors, check.warnings)


def _exempt(obj: Obj, old: Obj | None) -> bool:
    """UPDATEs that always pass: the object is being deleted (finalizer removal), or its spec
    is unchanged (status, labels, finalizers: ratcheting, as for Clusters)."""
    if old is None:
        return False
    if sub(obj, "metadata").get("deletionTimestamp"):
        return True
    return obj.get("spec") == old.get("spec")


# What people write for a driver, and the value that means it.
_DRIVER_SPELLINGS = {
    "postgres": "postgresql",
    "pg": "postgresql",
    "pgsql": "postgresql",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "etcd": "etcd",
    "etcd3": "etcd",
}


def _driver(check: Check, driver: Any) -> None:
    meant = _DRIVER_SPELLINGS.get(driver.lower()) if isinstance(driver, str) else None
    if driver is None or driver == "":
        check.error("spec.driver", f"required; use one of {', '.join(DRIVERS)}")
    elif meant is not None:
        check.error("spec.driver", f"{show(driver)} is not valid; use {meant}")
    else:
        check.error("spec.driver", f"{show(driver)} is not valid; use one of {', '.join(DRIVERS)}")


def endpoints(check: Check, value: Any, driver: str | None) -> None:
    """Each endpoint is ``host`` or ``host:port``, as the operator and kine will dial it."""
    if driver in DEFAULT_PORTS:
        port = DEFAULT_PORTS[driver]
        fix = f"use host:port, e.g. db.example.com:{port} (without a port: {port} for {driver})"
    else:
        fix = "use host:port, e.g. db.example.com:5432"
    if not isinstance(value, list) or not value:
        check.error("spec.endpoints", f"give at least one address of the server; {fix}")
        return
    seen: set[tuple[str, int]] = set()
    for i, endpoint in enumerate(value):
        path = f"spec.endpoints[{i}]"
        if not isinstance(endpoint, str):
            check.error(path, f"{show(endpoint)} is not a string; {fix}")
            continue
        try:
            address = split_endpoint(endpoint, driver or "")
        except ValueError as exc:
            check.error(path, f"{show(endpoint)} {exc}; {fix}")
            continue
        if address in seen:
            check.warn(path, f"{show(endpoint)} is listed twice; remove one")
        seen.add(address)


_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def admin_secret_ref(check: Check, ref: Any) -> None:
    if not isinstance(ref, dict):
        check.error(
            "spec.adminSecretRef",
            "required; name the Secret with credentials that may create databases and users, "
            "e.g. {name: db-admin, namespace: mothership-system}",
        )
        return
    for field, label in (("name", False), ("namespace", True)):
        problem = name_problem(ref.get(field), label=label)
        if problem is not None:
            what = "the Secret" if field == "name" else "the Secret's namespace"
            if problem.startswith("required"):
                problem = f"required; give {what}"
            check.error(f"spec.adminSecretRef.{field}", problem)
    for field in ("usernameKey", "passwordKey"):
        key = ref.get(field)
        if key is not None and not (isinstance(key, str) and _SECRET_KEY.match(key)):
            check.error(
                f"spec.adminSecretRef.{field}",
                f"{show(key)} is not a Secret key; keys are letters, digits, '-', '_' and '.', "
                f"e.g. {'username' if field == 'usernameKey' else 'password'}",
            )


def tls(check: Check, value: Any, driver: str) -> None:
    """etcd needs its CA (tenants authenticate with certificates from it); for the SQL
    drivers it is optional and makes the operator and kine verify the server with it."""
    if value is None:
        if driver == "etcd":
            check.error(
                "spec.tls",
                f"required for driver etcd: name the Secret with {TLS_CA_CERT_KEY} and "
                f"{TLS_CA_KEY_KEY} of the CA etcd trusts for clients, e.g. "
                "{secretRef: {name: etcd-ca, namespace: mothership-system}}",
            )
        return
    ref = sub(value, "secretRef") if isinstance(value, dict) else {}
    if not ref:
        check.error(
            "spec.tls.secretRef", "required; e.g. {name: etcd-ca, namespace: mothership-system}"
        )
        return
    for field, label in (("name", False), ("namespace", True)):
        problem = name_problem(ref.get(field), label=label)
        if problem is not None:
            check.error(f"spec.tls.secretRef.{field}", problem)


# --- a Cluster's reference ----------------------------------------------------------------------

REF = "spec.storage.kine.dataStoreRef"


def data_store_ref(check: Check, spec: Obj, old_spec: Obj | None) -> None:
    """``spec.storage.kine.dataStoreRef`` of a v1beta2 Cluster spec (``old_spec`` on UPDATE).

    The ref stands instead of a data source URL or Secret and needs storage type kine; it
    cannot be removed once the Cluster exists (the tenant's database is on that server), and
    a new name moves the tenant to that DataStore (said in a warning); reclaimPolicy may
    change.
    """
    storage = sub(spec, "storage")
    kine = sub(storage, "kine")
    ref = kine.get("dataStoreRef")
    old_storage = sub(old_spec, "storage") if old_spec is not None else {}
    old_ref = sub(old_storage, "kine").get("dataStoreRef")
    # Only a ref in effect (storage type kine) has a tenant on the DataStore to keep.
    in_effect = isinstance(old_ref, dict) and old_storage.get("type") == "kine"
    old_name = old_ref.get("name") if in_effect and isinstance(old_ref, dict) else None
    if isinstance(ref, dict):
        _ref_itself(check, storage, kine, ref)
    if old_spec is None or not isinstance(old_name, str) or not old_name:
        old_type = old_storage.get("type", "etcd") if old_spec is not None else None
        if old_type == "kine" and isinstance(ref, dict) and storage.get("type") == "kine":
            # From a data source to a DataStore; a type change has a warning of its own.
            check.warn(
                REF,
                "set on an existing Cluster: the control plane starts on a new, empty "
                f"database on DataStore {show(ref.get('name'))}; existing cluster state is "
                "not migrated",
            )
        return
    if not isinstance(ref, dict):
        check.error(
            REF,
            f"cannot be removed: this Cluster's data is on DataStore {show(old_name)}; moving a "
            "tenant off a DataStore is a separate operation, not a spec edit, so keep "
            f"dataStoreRef (name: {old_name}) and storage type kine",
        )
        return
    name = ref.get("name")
    if name == old_name or not name:  # no name: _ref_itself said it is required
        return
    check.warn(
        f"{REF}.name",
        f"changed from {show(old_name)} to {show(name)}: the operator moves this Cluster's "
        f"database to DataStore {show(name)} (same driver): writes stop during "
        "the copy and the control plane restarts on the new one; the database on "
        f"{show(old_name)} is kept with its login disabled",
    )


def _ref_itself(check: Check, storage: Obj, kine: Obj, ref: Obj) -> None:
    if kine.get("dataSourceURL") or kine.get("dataSourceSecretName"):
        check.error(
            REF,
            f"cannot be combined with {check.p('spec.storage.kine.dataSourceURL')} or "
            f"{check.p('spec.storage.kine.dataSourceSecretName')}; remove those (the operator "
            "makes the database and its credentials on the DataStore) or remove dataStoreRef",
        )
    storage_type = storage.get("type", "etcd")
    if storage_type != "kine":
        check.error(
            REF,
            f"needs spec.storage.type kine (it is {storage_type}); set spec.storage.type: "
            "kine, or remove dataStoreRef",
        )
    _name_and_policy(check, REF, ref, "a DataStore")


def _name_and_policy(check: Check, path: str, ref: Obj, what: str) -> None:
    """The name and reclaimPolicy of a dataStoreRef (kine's or etcd's)."""
    problem = name_problem(ref.get("name"))
    if problem is not None:
        if problem.startswith("required"):
            problem = f"required; give the name of {what} (kubectl get datastores)"
        check.error(f"{path}.name", problem)
    policy = ref.get("reclaimPolicy")
    if policy is not None and policy not in RECLAIM_POLICIES:
        near = [
            p for p in RECLAIM_POLICIES if isinstance(policy, str) and p.lower() == policy.lower()
        ]
        fix = f"use {near[0]} (values are case-sensitive)" if near else "use Retain or Delete"
        check.error(f"{path}.reclaimPolicy", f"{show(policy)} is not valid; {fix}")


ETCD_REF = "spec.storage.etcd.dataStoreRef"


def etcd_data_store_ref(check: Check, spec: Obj, old_spec: Obj | None) -> None:
    """``spec.storage.etcd.dataStoreRef``: needs storage type etcd and the kubernetes
    distribution; it cannot be added or removed later (the control plane would start empty
    or strand its data), and a new name moves the keys there (said in a warning)."""
    storage = sub(spec, "storage")
    ref = sub(storage, "etcd").get("dataStoreRef")
    old_storage = sub(old_spec, "storage") if old_spec is not None else {}
    old_ref = sub(old_storage, "etcd").get("dataStoreRef")
    if isinstance(ref, dict):
        storage_type = storage.get("type", "etcd")
        if storage_type != "etcd":
            check.warn(
                ETCD_REF,
                f"ignored because spec.storage.type is {storage_type}; set the type to etcd "
                "to keep the data on this DataStore",
            )
        _name_and_policy(check, ETCD_REF, ref, "an etcd DataStore")
    if old_spec is None:
        return
    old_name = old_ref.get("name") if isinstance(old_ref, dict) else None
    name = ref.get("name") if isinstance(ref, dict) else None
    if old_name == name:
        return
    if old_name is None:
        check.error(
            ETCD_REF,
            "cannot be added to an existing Cluster: its data is in its own etcd, and the "
            "control plane would start empty on the DataStore; create a new Cluster instead",
        )
    elif name is None:
        check.error(
            ETCD_REF,
            f"cannot be removed: this Cluster's keys are on DataStore {show(old_name)}; keep "
            f"dataStoreRef (name: {old_name})",
        )
    else:
        check.warn(
            f"{ETCD_REF}.name",
            f"changed from {show(old_name)} to {show(name)}: the operator moves this Cluster's "
            f"keys to etcd DataStore {show(name)}: the control plane stops during the copy and "
            f"restarts on the new one (resourceVersions start over there); the keys on "
            f"{show(old_name)} are kept",
        )
