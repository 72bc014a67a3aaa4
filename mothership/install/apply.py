"""Install into and uninstall from a cluster, with the objects of :mod:`.manifests`.

Install is ``kubectl apply --server-side --force-conflicts`` of the manifest in order,
under the field manager ``mothership-install``, followed by waits a person can read:
the CRDs established, the operator's pods ready, a leader holding the Lease, the webhook
CA bundle in place.

Uninstall removes every object labelled ``app.kubernetes.io/part-of: mothership``, but
refuses while Clusters exist: removing the CRDs would delete them, and with them each
control plane's CA. ``force`` deletes the Clusters first, through the running operator,
so each is finalized the way a ``kubectl delete`` would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Namespace, Pod, Secret
from lightkube.resources.rbac_authorization_v1 import (
    ClusterRole,
    ClusterRoleBinding,
    RoleBinding,
)
from lightkube.types import CascadeType, PatchType

from mothership.api.mothership import v1alpha1 as mothership_v1alpha1
from mothership.controllers import crd_deletion
from mothership.install import manifests
from mothership.render import encryption, names, pki_secrets
from mothership.webhooks.registration import CONFIG_NAME, CRD_NAMES

FIELD_MANAGER = "mothership-install"
PART_OF_SELECTOR = {"app.kubernetes.io/part-of": "mothership"}
# Namespaces the cluster cannot do without: never labelled as ours, never deleted.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
CLUSTER_FINALIZER = "k0smotron.io/finalizer"
JTR_FINALIZER = "k0smotron.io/jointokenrequest"

CLUSTER_GROUP = "k0smotron.io"
ClusterResource = create_namespaced_resource(CLUSTER_GROUP, "v1beta2", "Cluster", "clusters")
JTRResource = create_namespaced_resource(
    "k0smotron.io", "v1beta2", "JoinTokenRequest", "jointokenrequests"
)

DataStoreResource = create_global_resource(
    mothership_v1alpha1.GROUP,
    mothership_v1alpha1.VERSION,
    mothership_v1alpha1.KIND,
    mothership_v1alpha1.PLURAL,
)
# Every CRD of the install: those with a conversion webhook, and those with one version.
INSTALLED_CRD_NAMES = (*CRD_NAMES, mothership_v1alpha1.DATASTORE_CRD_NAME)

Obj = dict[str, Any]
Report = Callable[[str], None]
Poll = Callable[[], tuple[bool, str]]


class Refused(Exception):
    """The operation would destroy something the user did not ask to destroy."""


class ImageNotPulled(Exception):
    """The operator's image cannot be pulled; waiting longer will not change that."""


# An image pull failing this long is not a slow registry but a wrong name or no access.
IMAGE_PULL_GRACE = 60.0
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


def check_namespace(namespace: str) -> None:
    if namespace in SYSTEM_NAMESPACES:
        raise ValueError(
            f"namespace {namespace!r} is a system namespace; install mothership into its own "
            f"(default {manifests.NAMESPACE}): -n {manifests.NAMESPACE}"
        )


CLUSTERCTL_LABEL = "clusterctl.cluster.x-k8s.io"


def refuse_over_clusterctl(client: Client) -> None:
    """Refuse to install over mothership's Cluster API providers as clusterctl installed
    them: the apply would take over their objects half-way (the fields clusterctl set stay
    its own, so e.g. a cert-manager volume and ours end up on one Deployment, which the API
    server rejects after the CRDs were already changed), and clusterctl's inventory would no
    longer describe what runs."""
    try:
        crd = client.get(CustomResourceDefinition, f"clusters.{CLUSTER_GROUP}")
    except ApiError as exc:
        if exc.status.code != 404:
            raise
        return
    labels = (crd.metadata.labels or {}) if crd.metadata else {}
    if CLUSTERCTL_LABEL in labels:
        provider = labels.get("cluster.x-k8s.io/provider", "control-plane-mothership")
        raise Refused(
            f"mothership is installed here by clusterctl (provider {provider}); manage it with "
            "clusterctl (`clusterctl upgrade apply`), or remove it first with `clusterctl delete "
            "--control-plane mothership --bootstrap mothership --infrastructure mothership`"
        )


def objects_to_apply(client: Client, settings: manifests.Settings) -> list[Obj]:
    """The manifest, minus the Namespace when it exists and is not ours (we do not adopt,
    and so will not delete, a namespace someone else made)."""
    check_namespace(settings.namespace)
    objs = manifests.objects(settings)
    try:
        existing = client.get(Namespace, settings.namespace)
    except ApiError as exc:
        if exc.status.code != 404:
            raise
        return objs
    labels = (existing.metadata.labels or {}) if existing.metadata else {}
    if labels.get("app.kubernetes.io/part-of") == "mothership":
        return objs
    return [o for o in objs if o["kind"] != "Namespace"]


def with_pod_annotations(objs: list[Obj], annotations: dict[str, str]) -> list[Obj]:
    """The objects with extra annotations on the operator's pod template (e.g. the local
    image's digest, so a rebuilt image under the same tag rolls the pods)."""
    if not annotations:
        return objs
    out = []
    for obj in objs:
        if obj["kind"] == "Deployment":
            template = obj["spec"]["template"]
            meta = {**template["metadata"]}
            meta["annotations"] = {**meta.get("annotations", {}), **annotations}
            obj = {**obj, "spec": {**obj["spec"], "template": {**template, "metadata": meta}}}
        out.append(obj)
    return out


def apply_all(client: Client, objs: Iterable[Obj], report: Report) -> None:
    """Server-side apply in manifest order; CRDs must be established before anything else."""
    objs = list(objs)
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    for obj in crds:
        _apply(client, obj)
    report(f"applied {len(crds)} CustomResourceDefinitions")
    rest = [o for o in objs if o["kind"] != "CustomResourceDefinition"]
    for obj in rest:
        _apply(client, obj)
    kinds = sorted({o["kind"] for o in rest})
    report(f"applied {len(rest)} objects ({', '.join(kinds)})")


def _apply(client: Client, obj: Obj) -> None:
    client.apply(from_dict(obj), field_manager=FIELD_MANAGER, force=True)


# -- waiting -------------------------------------------------------------------------------


def crds_established(client: Client) -> Poll:
    def poll() -> tuple[bool, str]:
        waiting = []
        for name in INSTALLED_CRD_NAMES:
            crd = client.get(CustomResourceDefinition, name)
            conditions = (crd.status.conditions if crd.status else None) or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                waiting.append(name)
        return not waiting, f"waiting for {', '.join(waiting)}" if waiting else "established"

    return poll


def operator_ready(client: Client, namespace: str) -> Poll:
    """Every replica ready on the current template (a rollout is finished, not half done).

    Raises :class:`ImageNotPulled` when pulling the image has failed for a minute.
    """
    pull_failing_since: list[float] = []

    def poll() -> tuple[bool, str]:
        dep = client.get(Deployment, manifests.OPERATOR, namespace=namespace)
        want = dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1
        st = dep.status
        ready = (st.readyReplicas or 0) if st else 0
        updated = (st.updatedReplicas or 0) if st else 0
        total = (st.replicas or 0) if st else 0
        observed = (st.observedGeneration or 0) if st else 0
        done = (
            observed >= ((dep.metadata.generation if dep.metadata else None) or 0)
            and ready == want
            and updated == want
            and total == want
        )
        phase = f"{ready}/{want} pods ready" + ("" if updated == want else f", {updated} updated")
        if done:
            return True, phase
        reasons = _pod_trouble(client, namespace)
        if reasons:
            phase += f" ({', '.join(sorted(reasons))})"
        if reasons & PULL_FAILURES:
            pull_failing_since[:1] = pull_failing_since[:1] or [time.monotonic()]
            if time.monotonic() - pull_failing_since[0] > IMAGE_PULL_GRACE:
                pod_spec = dep.spec.template.spec if dep.spec else None
                image = pod_spec.containers[0].image if pod_spec else "?"
                raise ImageNotPulled(
                    f"the operator image {image} cannot be pulled ({', '.join(sorted(reasons))})."
                    " For a registry: --image repository:tag the cluster can pull. For the local "
                    "mothership: run `mothership install` from a checkout, which imports it"
                )
        else:
            pull_failing_since.clear()
        return False, phase

    return poll


def _pod_trouble(client: Client, namespace: str) -> set[str]:
    """Why pods are not ready, in the kubelet's words (image missing, crash loop ...)."""
    reasons = set()
    for pod in client.list(Pod, namespace=namespace, labels=manifests.SELECTOR):
        for cs in (pod.status.containerStatuses if pod.status else None) or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason not in (None, "ContainerCreating"):
                reasons.add(waiting.reason)
    return reasons


def leader(client: Client, namespace: str) -> str | None:
    """The pod holding the operator's Lease, if the Lease is held and fresh."""
    try:
        lease = client.get(Lease, manifests.LEASE_NAME, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    spec = lease.spec
    if not spec or not spec.holderIdentity or not spec.renewTime:
        return None
    renewed = spec.renewTime if spec.renewTime.tzinfo else spec.renewTime.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - renewed).total_seconds()
    return spec.holderIdentity if age <= (spec.leaseDurationSeconds or 15) else None


def leader_elected(client: Client, namespace: str) -> Poll:
    def poll() -> tuple[bool, str]:
        holder = leader(client, namespace)
        return holder is not None, f"leader {holder}" if holder else "no leader yet"

    return poll


def ca_bundle_registered(client: Client) -> Poll:
    def poll() -> tuple[bool, str]:
        missing = []
        kinds: tuple[type[MutatingWebhookConfiguration | ValidatingWebhookConfiguration], ...] = (
            MutatingWebhookConfiguration,
            ValidatingWebhookConfiguration,
        )
        for kind in kinds:
            config = client.get(kind, CONFIG_NAME)
            if not all(h.clientConfig.caBundle for h in config.webhooks or []):
                missing.append(kind.__name__)
        for name in CRD_NAMES:
            conversion = client.get(CustomResourceDefinition, name).spec.conversion
            webhook = conversion.webhook if conversion else None
            if not (webhook and webhook.clientConfig and webhook.clientConfig.caBundle):
                missing.append(name)
        if missing:
            return False, f"caBundle missing in {', '.join(missing)}"
        return True, "caBundle registered"

    return poll


def webhooks_answering(client: Client, namespace: str) -> Poll:
    """The API server reaches the webhooks through their Service (pods ready and caBundle
    set are not enough: the Service's endpoints reach the node's proxy a moment later).

    Probed with a server-side dry run of a Cluster create, which passes through both
    admission webhooks and stores nothing.
    """

    def poll() -> tuple[bool, str]:
        probe = ClusterResource(
            metadata=ObjectMeta(name="mothership-install-probe", namespace=namespace),
            spec={},
        )
        try:
            client.create(probe, dry_run=True)
        except ApiError as exc:
            message = exc.status.message or str(exc)
            if "failed calling webhook" in message:
                return False, "not reachable yet: " + message.rsplit(": ", 1)[-1]
            # Refused by a webhook is answered by a webhook.
        return True, "answering"

    return poll


# -- uninstall -----------------------------------------------------------------------------


def clusters_left(client: Client) -> list[str]:
    """namespace/name of every Cluster; none when the kind is not served at all."""
    try:
        return sorted(
            f"{c.metadata.namespace}/{c.metadata.name}"
            for c in client.list(ClusterResource, namespace="*")
            if c.metadata is not None
        )
    except ApiError as exc:
        if exc.status.code == 404:
            return []
        raise


def refuse_while_clusters(client: Client) -> None:
    left = clusters_left(client)
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        raise Refused(
            f"{len(left)} Cluster(s) still exist ({shown}); uninstalling would delete them "
            "with their CAs and data. Delete them first (`mothership cluster delete NAME`), "
            "or run `mothership uninstall --force` to delete them and then uninstall"
        )


def delete_custom_objects(client: Client) -> int:
    """Delete every JoinTokenRequest and Cluster (the operator finalizes each).

    Foreground: a Cluster stays until the garbage collector has removed what it owns, so
    waiting for the Clusters to go is waiting for their control planes to go.
    """
    count = 0
    for resource in (JTRResource, ClusterResource):
        try:
            items = _list_everywhere(client, resource)
        except ApiError as exc:
            if exc.status.code == 404:
                continue
            raise
        for item in items:
            name, namespace = _named(item)
            _delete(client, resource, name, namespace, cascade=CascadeType.FOREGROUND)
            count += 1
    return count


def _named(obj: Any) -> tuple[str, str | None]:
    """Name and namespace of an object read from the API server (which always names it)."""
    meta = obj.metadata
    assert meta is not None and meta.name is not None
    return meta.name, meta.namespace


def custom_objects_gone(client: Client) -> Poll:
    def poll() -> tuple[bool, str]:
        left = clusters_left(client)
        return not left, f"{len(left)} Cluster(s) finalizing" if left else "no Clusters left"

    return poll


# A kind nobody has listed since the API server started answers 429 "storage is
# (re)initializing" while its watch cache fills: a few seconds, waited out.
STORAGE_INITIALIZING_WAIT = 30.0


def _list_everywhere(client: Client, resource: Any, **selectors: Any) -> list[Any]:
    """Every object of the kind in all namespaces, once the API server can list it."""
    deadline = time.monotonic() + STORAGE_INITIALIZING_WAIT
    pause = 0.2
    while True:
        try:
            return list(client.list(resource, namespace="*", **selectors))
        except ApiError as exc:
            if exc.status.code != 429 or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def release_finalizers(client: Client) -> list[str]:
    """Last resort when no operator is left to finalize: drop our finalizers ourselves.

    Only ours: another controller's finalizer is that controller's business. Those on the
    Secrets that keep a Cluster's CAs and encryption key too: the Cluster's finalize would
    have released them, and garbage collection would otherwise leave them terminating.
    """
    released = []
    for resource, finalizer in ((ClusterResource, CLUSTER_FINALIZER), (JTRResource, JTR_FINALIZER)):
        try:
            items = _list_everywhere(client, resource)
        except ApiError as exc:
            if exc.status.code == 404:
                continue
            raise
        for item in items:
            name, namespace = _named(item)
            assert item.metadata is not None
            finalizers = list(item.metadata.finalizers or [])
            if finalizer not in finalizers:
                continue
            patch = {
                "metadata": {
                    "finalizers": [f for f in finalizers if f != finalizer],
                    "resourceVersion": item.metadata.resourceVersion,
                }
            }
            client.patch(resource, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
            released.append(f"{namespace}/{name}")
    ours = (pki_secrets.FINALIZER, encryption.FINALIZER)
    managed: dict[str, Any] = {"app.kubernetes.io/managed-by": names.MANAGED_BY}
    for secret in _list_everywhere(client, Secret, labels=managed):
        name, namespace = _named(secret)
        assert secret.metadata is not None
        finalizers = list(secret.metadata.finalizers or [])
        if not any(f in finalizers for f in ours):
            continue
        patch = {
            "metadata": {
                "finalizers": [f for f in finalizers if f not in ours] or None,
                "resourceVersion": secret.metadata.resourceVersion,
            }
        }
        client.patch(Secret, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        released.append(f"{namespace}/{name}")
    return released


@dataclass(frozen=True)
class Leftover:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


# Kinds an install creates, cluster-scoped first (namespaced ones go with the namespace,
# except RoleBindings in watched namespaces).
# Resource types of several API groups, scopes and models: typed loosely (lightkube's
# client methods are overloaded per scope).
_LABELLED: tuple[tuple[type[Any], bool], ...] = (
    (MutatingWebhookConfiguration, False),
    (ValidatingWebhookConfiguration, False),
    (ClusterRoleBinding, False),
    (ClusterRole, False),
    (RoleBinding, True),
    (CustomResourceDefinition, False),
    (Namespace, False),
)


def installed_objects(client: Client) -> list[Leftover]:
    """Every object labelled as part of mothership that an uninstall removes."""
    found = []
    for resource, namespaced in _LABELLED:
        kwargs: dict[str, Any] = {"labels": PART_OF_SELECTOR}
        if namespaced:
            kwargs["namespace"] = "*"
        for item in client.list(resource, **kwargs):
            meta = item.metadata
            if resource is Namespace and meta.name in SYSTEM_NAMESPACES:
                continue
            found.append(Leftover(resource.__name__, meta.namespace or "", meta.name))
    return found


def namespaced_install_objects(namespace: str) -> list[Leftover]:
    """What the manifest puts into a namespace, for one we did not create (and keep)."""
    made = [
        Leftover(o["kind"], namespace, o["metadata"]["name"])
        for o in manifests.objects(manifests.Settings(namespace=namespace))
        if o["metadata"].get("namespace") == namespace
    ]
    # ... and what the operator made there at run time.
    return [
        *made,
        Leftover("Secret", namespace, manifests.CERT_SECRET),
        Leftover("Lease", namespace, manifests.LEASE_NAME),
    ]


def release_datastores(client: Client) -> list[str]:
    """Take the in-use finalizer off every DataStore, once no Cluster is left to use one.

    Deleting the CRDs deletes the DataStores, and the operator that would release them goes
    in the same uninstall (its RBAC first), so the CRD would wait for them forever. Only the
    DataStore objects go; the database servers and the tenants' databases are not touched.
    """
    if clusters_left(client):
        return []
    released = []
    try:
        stores = list(client.list(DataStoreResource))
    except ApiError as exc:
        if exc.status.code == 404:
            return []
        raise
    for store in stores:
        name, _ = _named(store)
        assert store.metadata is not None
        finalizers = list(store.metadata.finalizers or [])
        if mothership_v1alpha1.IN_USE_FINALIZER not in finalizers:
            continue
        kept = [f for f in finalizers if f != mothership_v1alpha1.IN_USE_FINALIZER]
        patch = {
            "metadata": {
                "finalizers": kept or None,
                "resourceVersion": store.metadata.resourceVersion,
            }
        }
        client.patch(DataStoreResource, name, patch, patch_type=PatchType.MERGE)
        released.append(name)
    return released


def delete_installed(client: Client, namespace: str) -> list[Leftover]:
    """Delete the install: webhooks first (nothing may call a webhook being removed),
    then RBAC, CRDs and the namespace, which takes the operator with it. DataStores are
    released first (:func:`release_datastores`), since no Cluster is left by now."""
    release_datastores(client)
    deleted = installed_objects(client)
    resources = {r.__name__: r for r, _ in _LABELLED}
    ours = any(o.kind == "Namespace" and o.name == namespace for o in deleted)
    if not ours:  # a namespace we did not create: remove our objects from it one by one
        deleted += [o for o in namespaced_install_objects(namespace) if _exists(client, o)]
    for obj in deleted:
        resource = resources.get(obj.kind) or _namespaced_resource(obj.kind)
        _delete(client, resource, obj.name, obj.namespace or None)
    return deleted


def _namespaced_resource(kind: str) -> type[Any]:
    from lightkube.resources import (
        apps_v1,
        coordination_v1,
        core_v1,
        policy_v1,
        rbac_authorization_v1,
    )

    for module in (apps_v1, core_v1, policy_v1, rbac_authorization_v1, coordination_v1):
        if hasattr(module, kind):
            return getattr(module, kind)
    if kind in ("Issuer", "Certificate"):
        plural = kind.lower() + "s"
        return create_namespaced_resource("cert-manager.io", "v1", kind, plural)
    raise KeyError(kind)


def _exists(client: Client, obj: Leftover) -> bool:
    try:
        client.get(_namespaced_resource(obj.kind), obj.name, namespace=obj.namespace)
        return True
    except (ApiError, KeyError) as exc:
        if isinstance(exc, ApiError) and exc.status.code != 404:
            raise
        return False


def _delete(
    client: Client,
    resource: Any,
    name: str,
    namespace: str | None,
    cascade: CascadeType = CascadeType.BACKGROUND,
) -> None:
    try:
        client.delete(resource, name, namespace=namespace, cascade=cascade)
    except ApiError as exc:
        if exc.status.code != 404:
            raise


def all_gone(client: Client, deleted: list[Leftover]) -> Poll:
    """Whether every deleted object has gone; CRDs that linger are nudged on the way
    (:mod:`mothership.controllers.crd_deletion`)."""
    nudge = crd_deletion.Nudger(
        client, [o.name for o in deleted if o.kind == CustomResourceDefinition.__name__]
    )

    def there(obj: Leftover) -> bool:
        if obj.kind == CustomResourceDefinition.__name__:
            seen = nudge.still_there(obj.name)
            if seen is not None:  # the nudger has just looked: no second GET
                return seen
        return _still_there(client, obj)

    def poll() -> tuple[bool, str]:
        nudge()
        left = [o for o in deleted if there(o)]
        return not left, f"{len(left)} object(s) terminating" if left else "all removed"

    return poll


def _still_there(client: Client, obj: Leftover) -> bool:
    resources = {r.__name__: r for r, _ in _LABELLED}
    resource = resources.get(obj.kind) or _namespaced_resource(obj.kind)
    try:
        client.get(resource, obj.name, namespace=obj.namespace or None)
        return True
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise


def wait(poll: Poll, timeout: float, interval: float = 1.0) -> str:
    """A plain wait for callers without a terminal (the CLI shows a spinner instead)."""
    deadline = time.monotonic() + timeout
    while True:
        done, phase = poll()
        if done:
            return phase
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done after {timeout:.0f}s: {phase}")
        time.sleep(interval)
