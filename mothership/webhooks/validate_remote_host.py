"""Admission rules for ``spec.remoteHostCluster`` (a control plane hosted in another cluster).

The reference names a Secret with the hosting cluster's kubeconfig. Where the control plane
runs is fixed once the Cluster exists: its pods, volumes and Secrets are in that cluster,
and pointing the Cluster elsewhere would start an empty control plane there while the old
one kept running. Rotating the credentials is an edit of the Secret, not of the Cluster.
"""

from __future__ import annotations

import re

from mothership.webhooks.findings import Check, Obj, show, sub

REF = "spec.remoteHostCluster.kubeconfigRef"
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def kubeconfig_ref(spec: Obj) -> Obj | None:
    """The reference in effect, or None when the control plane runs in the mothership."""
    ref = sub(spec, "remoteHostCluster").get("kubeconfigRef")
    return ref if isinstance(ref, dict) else None


def hosted_by(spec: Obj) -> tuple[str, str] | None:
    """The Secret (namespace, name) naming the cluster the pods run in; None: the mothership.
    Clusters on one host share its node ports; on different hosts they cannot clash."""
    ref = kubeconfig_ref(spec)
    return (str(ref.get("namespace")), str(ref.get("name"))) if ref else None


def remote_host_cluster(check: Check, spec: Obj, old_spec: Obj | None, namespace: str = "") -> None:
    """The reference names a Secret in the Cluster's own namespace that a kubeconfig can be
    read from, and does not move.

    Own namespace: the operator reads the Secret with its own rights, on behalf of whoever
    may create a Cluster; a Secret of another namespace would lend them credentials they
    cannot read themselves (k0smotron takes any namespace; a copy of the Secret does here).
    """
    ref = kubeconfig_ref(spec)
    if ref is not None:
        _ref_itself(check, ref)
        theirs = ref.get("namespace")
        if namespace and isinstance(theirs, str) and theirs and theirs != namespace:
            check.error(
                f"{REF}.namespace",
                f"must be the Cluster's own namespace {show(namespace)}, not {show(theirs)}: "
                "the operator would read another namespace's credentials on behalf of this "
                f"one; copy the Secret into {namespace} and name it there",
            )
    if old_spec is None:
        return
    old = kubeconfig_ref(old_spec)
    if old == ref or _same(old, ref):
        return
    if old is None:
        check.error(
            REF,
            "cannot be added to an existing Cluster: its control plane runs in this mothership; "
            "moving a control plane to another cluster is not a spec edit, so create a new "
            "Cluster with remoteHostCluster set",
        )
    elif ref is None:
        check.error(
            REF,
            f"cannot be removed: this Cluster's control plane runs in the cluster named by "
            f"Secret {_where(old)}; keep the reference (to rotate credentials, update the Secret)",
        )
    else:
        check.error(
            REF,
            f"cannot change from Secret {_where(old)} to {_where(ref)}: the control plane runs in "
            "the cluster the first one names; to rotate its credentials, update that Secret's "
            "kubeconfig instead",
        )


def _same(old: Obj | None, new: Obj | None) -> bool:
    if old is None or new is None:
        return False
    return _where(old) == _where(new)


def _where(ref: Obj) -> str:
    return f"{ref.get('namespace')}/{ref.get('name')} key {ref.get('key') or 'value'}"


def _ref_itself(check: Check, ref: Obj) -> None:
    name, namespace, key = ref.get("name"), ref.get("namespace"), ref.get("key", "value")
    if not isinstance(name, str) or not name or len(name) > 253 or not _SUBDOMAIN.match(name):
        check.error(
            f"{REF}.name",
            f"{show(name)} is not a Secret name: use lowercase letters, digits, '-' and '.' "
            "(e.g. hosting-cluster-kubeconfig)",
        )
    if (
        not isinstance(namespace, str)
        or not namespace
        or len(namespace) > 63
        or not _LABEL.match(namespace)
    ):
        check.error(
            f"{REF}.namespace",
            f"{show(namespace)} is not a namespace name: name the namespace of the Secret "
            "that holds the hosting cluster's kubeconfig (e.g. default)",
        )
    if not isinstance(key, str) or not key or len(key) > 253 or not _KEY.match(key):
        check.error(
            f"{REF}.key",
            f"{show(key)} is not a Secret key: use letters, digits, '-', '_' and '.' "
            "(the default is value)",
        )
