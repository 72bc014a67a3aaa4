"""k0smotron.io/v1beta2: the storage version of Cluster and JoinTokenRequest.

Field names, types, enums and defaults follow k0smotron v2 so that manifests written for
k0smotron apply unchanged; descriptions are ours. Where we deliberately differ, the field
description or a comment says so. Core Kubernetes types that k0smotron embeds (resource
requirements, volumes, topology spread constraints, PVC specs) are kept as free-form objects:
we only pass them through to generated workloads, and the API server validates them there.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeAlias

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from mothership.api.base import CRDInfo, KubeModel, PrinterColumn, TopLevel, VersionInfo
from mothership.api.schema_markers import FreeForm, Quantity, preserve_unknown_object

JsonDict: TypeAlias = dict[str, JsonValue]  # pydantic.json_schema.JsonDict, not exported

GROUP = "k0smotron.io"
API_VERSION = f"{GROUP}/v1beta2"

KINE_DATASOURCE_SECRET_KEY = "K0SMOTRON_KINE_DATASOURCE_URL"
"""Key of the Secret named by ``storage.kine.dataSourceSecretName`` that holds the URL."""

DEFAULT_K0S_IMAGE = "quay.io/k0sproject/k0s"
DEFAULT_ETCD_IMAGE = "quay.io/k0sproject/etcd:v3.7.1"
DEFAULT_DEFRAG_IMAGE = "ghcr.io/ahrtr/etcd-defrag:v0.16.0"
DEFAULT_DEFRAG_SCHEDULE = "0 12 * * *"
DEFAULT_DEFRAG_RULE = "dbQuotaUsage > 0.8 || dbSize - dbSizeInUse > 200*1024*1024"
DEFAULT_PROMETHEUS_IMAGE = "quay.io/k0sproject/prometheus:v2.44.0"
DEFAULT_PROXY_IMAGE = "nginx:1.19.10"
DEFAULT_API_PORT = 30443
DEFAULT_DISTRIBUTION: Distribution = "k0s"
DEFAULT_KUBERNETES_VERSION = "v1.35.4"
"""Version given to a kubernetes-distribution Cluster created without one (the pinned one)."""
DEFAULT_K0S_VERSION = "v1.35.4-k0s.0"
"""k0s version given to a Cluster created without one: by the webhook, and by rendering when
no webhook ran and no version is recorded yet.

k0s v1.35.4 ships Kubernetes v1.35.4, the version pinned in ``mothership.testenv.pins``,
so a defaulted cluster runs the same Kubernetes the project builds and tests against.
k0smotron's own default (v1.27.9) left upstream support long ago.
"""
# Versions of the upstream pieces the kubernetes distribution runs by default. The
# Kubernetes components take the Cluster's version as their tag; these do not follow it.
KONNECTIVITY_VERSION = "v0.34.0"
KINE_VERSION = "v0.17.5"
COREDNS_VERSION = "v1.14.7"
FLANNEL_VERSION = "v0.28.10"
METRICS_SERVER_VERSION = "v0.8.0"
UPSTREAM_REGISTRY = "registry.k8s.io"
DEFAULT_KONNECTIVITY_SERVER_IMAGE = (
    f"{UPSTREAM_REGISTRY}/kas-network-proxy/proxy-server:{KONNECTIVITY_VERSION}"
)
DEFAULT_KONNECTIVITY_AGENT_IMAGE = (
    f"{UPSTREAM_REGISTRY}/kas-network-proxy/proxy-agent:{KONNECTIVITY_VERSION}"
)
DEFAULT_KINE_IMAGE = f"docker.io/rancher/kine:{KINE_VERSION}"
DEFAULT_COREDNS_IMAGE = f"{UPSTREAM_REGISTRY}/coredns/coredns:{COREDNS_VERSION}"
DEFAULT_KONNECTIVITY_PORT = 30132
K0S_TAG_SUFFIX = "k0s.0"

# k0smotron's own v1beta2 has no service annotations/labels/loadBalancerClass/
# externalTrafficPolicy; when it converts a v1beta1 Cluster it parks them in these metadata
# annotations (JSON-encoded) and its controller still honours them. We carry the fields in
# spec.service instead, but objects exported from k0smotron may arrive with these keys, so a
# controller should fall back to them when spec.service leaves a field unset.
LEGACY_SERVICE_LABELS_ANNOTATION = "k0smotron.io/conversion-dropped-service.labels"
LEGACY_SERVICE_ANNOTATIONS_ANNOTATION = "k0smotron.io/conversion-dropped-service.annotations"
LEGACY_SERVICE_TRAFFIC_POLICY_ANNOTATION = (
    "k0smotron.io/conversion-dropped-service.externalTrafficPolicy"
)
LEGACY_SERVICE_LB_CLASS_ANNOTATION = "k0smotron.io/conversion-dropped-service.loadBalancerClass"

CLUSTER_REF_NAMESPACE_ANNOTATION = "k0smotron.io/cluster-ref-namespace"
# Who created a JoinTokenRequest, as the API server authenticated them (set by admission).
REQUESTER_ANNOTATION = "mothership.io/requested-by"
"""Where a v1beta1 JoinTokenRequest's ``clusterRef.namespace`` lives in v1beta2 (as in k0smotron).

v1beta2 only names a Cluster in the request's own namespace; this annotation keeps old
cross-namespace requests working.
"""

# Condition types k0smotron reports on a Cluster; ``Available`` is the summary.
CONDITION_AVAILABLE = "Available"
CONDITION_CONTROL_PLANE_FUNCTIONAL = "ControlPlaneFunctional"
CONDITION_CONTROL_PLANE_UP_TO_DATE = "ControlPlaneUpToDate"
CONDITION_CONTROL_PLANE_SCALING = "ControlPlaneScaling"
CONDITION_CONTROL_PLANE_EXPOSED = "ControlPlaneExposed"
CONDITION_KUBECONFIG_SECRET_AVAILABLE = "KubeconfigSecretAvailable"
CONDITION_CERTIFICATES_AVAILABLE = "CertificatesAvailable"
CONDITION_DELETING = "Deleting"
CONDITION_JOIN_TOKEN_SECRET_CREATED = "JoinTokenSecretCreated"
# mothership's own: a single-use token was taken by a node and revoked.
CONDITION_JOIN_TOKEN_USED = "TokenUsed"

Distribution = Literal["k0s", "kubernetes"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
TrafficPolicy = Literal["Cluster", "Local"]
PersistenceType = Literal["emptyDir", "hostPath", "pvc"]
StorageType = Literal["etcd", "kine", "nats"]
PatchType = Literal["json", "merge", "strategic"]
CertificateType = Literal[
    "ca", "sa", "proxy", "etcd", "apiserver-etcd-client", "etcd-peer", "etcd-server"
]
NodeRole = Literal["worker", "controller"]
ReclaimPolicy = Literal["Retain", "Delete"]


# --- shared building blocks (v1beta1 reuses them, as k0smotron does) -------------------------


class KubeconfigRef(KubeModel):
    """Secret holding a kubeconfig for the cluster that should run the control plane."""

    name: str = Field(description="Name of the Secret with the kubeconfig.")
    namespace: str = Field(description="Namespace of the Secret with the kubeconfig.")
    key: str = Field(default="value", description="Key inside the Secret that holds the file.")


class RemoteHostClusterSpec(KubeModel):
    """Where to run the control plane when it is not the management cluster."""

    kubeconfig_ref: KubeconfigRef | None = Field(
        default=None,
        alias="kubeconfigRef",
        description="Credentials for the hosting cluster; workloads are created through them.",
    )


class IngressSpec(KubeModel):
    """Expose the API server and konnectivity through an Ingress with TLS passthrough."""

    deploy: bool = Field(
        default=True,
        description="Create the Ingress object; false when the user brings their own.",
    )
    port: int = Field(default=443, description="Port the ingress controller listens on.")
    api_host: str = Field(alias="apiHost", description="Host name routed to the API server.")
    konnectivity_host: str = Field(
        alias="konnectivityHost", description="Host name routed to the konnectivity server."
    )
    class_name: str | None = Field(
        default=None,
        alias="className",
        description="IngressClass to use; cluster default if unset.",
    )
    annotations: dict[str, str] | None = Field(
        default=None,
        description="Extra annotations for the Ingress, e.g. to enable SSL passthrough.",
    )


class ServiceSpec(KubeModel):
    """The Service in front of the control plane pods."""

    # k0smotron v1beta2 dropped annotations, labels, loadBalancerClass and
    # externalTrafficPolicy from this object (v1beta1 has them). We keep them so nothing set
    # through v1beta1 is lost and v1beta2 users can set them too; k0smotron's CRD would merely
    # prune them, so k0smotron manifests are unaffected.

    type: ServiceType = Field(default="ClusterIP", description="Kubernetes Service type.")
    api_port: int = Field(
        default=DEFAULT_API_PORT,
        alias="apiPort",
        description="Kubernetes API port; also the node port when the type is NodePort.",
    )
    konnectivity_port: int = Field(
        default=DEFAULT_KONNECTIVITY_PORT,
        alias="konnectivityPort",
        description="Konnectivity server port; also the node port when the type is NodePort.",
    )
    annotations: dict[str, str] | None = Field(
        default=None, description="Extra annotations for the Service (cloud LB settings etc.)."
    )
    labels: dict[str, str] | None = Field(default=None, description="Extra labels for the Service.")
    load_balancer_class: str | None = Field(
        default=None,
        alias="loadBalancerClass",
        description="Load balancer implementation to ask for; LoadBalancer type only.",
    )
    external_traffic_policy: TrafficPolicy | None = Field(
        default=None,
        alias="externalTrafficPolicy",
        description="Whether external traffic may hop nodes; NodePort and LoadBalancer only.",
    )


# Object-level defaults as k0smotron declares them: the CRD fills these in when the whole
# object is missing, while the per-field defaults only apply inside an object that is given.
SERVICE_SCHEMA_DEFAULT: JsonDict = {
    "type": "ClusterIP",
    "apiPort": DEFAULT_API_PORT,
    "konnectivityPort": DEFAULT_KONNECTIVITY_PORT,
}


class EmbeddedObjectMeta(KubeModel):
    """The part of object metadata that makes sense on a template."""

    name: str | None = Field(default=None, description="Name of the generated object.")
    namespace: str | None = Field(default=None, description="Namespace of the generated object.")
    labels: dict[str, str] | None = Field(default=None, description="Labels to set.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations to set.")
    finalizers: list[str] | None = Field(default=None, description="Finalizers to set.")


class PersistentVolumeClaimTemplate(KubeModel):
    """A PersistentVolumeClaim as written in a manifest; used as a StatefulSet claim template."""

    api_version: str | None = Field(
        default=None, alias="apiVersion", description="Ignored; accepted for copy-paste."
    )
    kind: str | None = Field(default=None, description="Ignored; accepted for copy-paste.")
    metadata: EmbeddedObjectMeta | None = Field(
        default=None, description="Name, labels and annotations of the claim."
    )
    spec: FreeForm | None = Field(
        default=None, description="A core/v1 PersistentVolumeClaimSpec, passed through."
    )
    status: FreeForm | None = Field(
        default=None, description="Ignored; present only because k0smotron embeds the full type."
    )


class PersistenceSpec(KubeModel):
    """Where the control plane keeps /var/lib/k0s."""

    # k0smotron declares this enum with a typo (``Enum:`` instead of ``Enum=``), so its CRD
    # accepts any string; we enforce it.
    type: PersistenceType = Field(
        default="emptyDir",
        description="emptyDir (lost with the pod), hostPath, or pvc (one claim per replica).",
    )
    persistent_volume_claim: PersistentVolumeClaimTemplate | None = Field(
        default=None,
        alias="persistentVolumeClaim",
        description="Claim template used when type is pvc.",
    )
    auto_delete_pvcs: bool = Field(
        default=False,
        alias="autoDeletePVCs",
        description="Delete the claims together with the Cluster instead of keeping the data.",
    )
    host_path: str | None = Field(
        default=None,
        alias="hostPath",
        description="Directory on the node used when type is hostPath.",
    )


class StoragePersistenceSpec(KubeModel):
    """Volume size and class for a data store (etcd members, embedded NATS)."""

    storage_class: str | None = Field(
        default=None,
        alias="storageClass",
        description="StorageClass of the claims; the cluster default if unset.",
    )
    size: Quantity = Field(default="1Gi", description="Requested size of each claim.")


class DefragJob(KubeModel):
    """Periodic etcd defragmentation, which keeps the database from growing without bound."""

    enabled: bool = Field(default=False, description="Run the defragmentation CronJob.")
    schedule: str = Field(default=DEFAULT_DEFRAG_SCHEDULE, description="Cron schedule of the job.")
    rule: str = Field(
        default=DEFAULT_DEFRAG_RULE,
        description="etcd-defrag rule deciding when a member is worth defragmenting.",
    )
    image: str = Field(default=DEFAULT_DEFRAG_IMAGE, description="etcd-defrag image to run.")


class EtcdSpec(KubeModel):
    """The etcd StatefulSet deployed next to the control plane when storage type is etcd."""

    # No CRD default, unlike k0smotron: the API server would fill it in before the admission
    # webhook runs, and the webhook could no longer tell it from an image the user chose.
    image: str | None = Field(
        default=None,
        description=(
            "etcd image, including the tag. Filled in on creation with the operator's "
            f"default etcd image ({DEFAULT_ETCD_IMAGE} unless the operator runs with "
            "--default-etcd-image); an image set here is never replaced."
        ),
    )
    args: list[str] | None = Field(
        default=None, description="Extra etcd flags; they override the defaults of the same name."
    )
    persistence: StoragePersistenceSpec = Field(
        default_factory=StoragePersistenceSpec, description="Volumes of the etcd members."
    )
    auto_delete_pvcs: bool = Field(
        default=False,
        alias="autoDeletePVCs",
        description="Delete the etcd claims together with the Cluster.",
    )
    defrag_job: DefragJob = Field(
        default_factory=DefragJob, alias="defragJob", description="Periodic defragmentation."
    )
    resources: FreeForm | None = Field(
        default=None, description="core/v1 ResourceRequirements for the etcd container."
    )
    data_store_ref: DataStoreRef | None = Field(
        default=None,
        alias="dataStoreRef",
        description=(
            "Keep the data on a shared etcd DataStore (mothership.io) under a key prefix of "
            "this Cluster's own instead of a managed etcd StatefulSet: the operator creates "
            "the etcd user, its role and client certificate. The other etcd fields are then "
            "unused. kubernetes distribution only. mothership's own: not in k0smotron."
        ),
    )


ETCD_SCHEMA_DEFAULT: JsonDict = {"persistence": {}}


class CertificateRef(KubeModel):
    """A user-provided certificate Secret to use instead of a generated one."""

    type: CertificateType = Field(description="Which certificate of the cluster this replaces.")
    name: str | None = Field(default=None, description="Name of the Secret holding it.")


class Mount(KubeModel):
    """A volume mounted at a path in the control plane container.

    Besides ``path`` and ``readOnly`` the object carries one core/v1 volume source inline
    (``configMap``, ``secret``, ``hostPath``, ...), so unknown keys are kept, not dropped.
    """

    model_config = ConfigDict(extra="allow", json_schema_extra=preserve_unknown_object)

    path: str = Field(description="Absolute path inside the control plane container.")
    read_only: bool = Field(
        default=False,
        alias="readOnly",
        description="Mount read-only; ConfigMap and Secret sources are always read-only.",
    )


class MonitoringSpec(KubeModel):
    """Sidecars that expose control plane metrics to the management cluster's Prometheus."""

    enabled: bool = Field(default=False, description="Add the scraping and proxy sidecars.")
    prometheus_image: str = Field(
        default=DEFAULT_PROMETHEUS_IMAGE,
        alias="prometheusImage",
        description="Image of the sidecar that scrapes the control plane components.",
    )
    proxy_image: str = Field(
        default=DEFAULT_PROXY_IMAGE,
        alias="proxyImage",
        description="Image of the sidecar that serves the scraped metrics.",
    )


class SecretMetadata(KubeModel):
    """Labels and annotations copied onto a generated Secret, winning over ours."""

    labels: dict[str, str] | None = Field(default=None, description="Labels to add.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations to add.")


# --- v1beta2-only building blocks -------------------------------------------------------------


class DataStoreRef(KubeModel):
    """A shared mothership.io DataStore that holds this Cluster's data (mothership's own)."""

    name: str = Field(
        min_length=1,
        max_length=253,
        description=(
            "Name of the DataStore (cluster-scoped). The operator creates a database and a "
            "user for this Cluster on it (etcd: a user and a role limited to the Cluster's "
            "key prefix); fixed once the Cluster exists, except that naming another DataStore "
            "of the same driver moves the data there."
        ),
    )
    reclaim_policy: ReclaimPolicy = Field(
        default="Retain",
        alias="reclaimPolicy",
        description=(
            "Retain keeps the tenant's database and user (etcd: keys, user and role) when the "
            "Cluster is deleted (the data belongs to the user); Delete drops them."
        ),
    )


class KineSpec(KubeModel):
    """Connection to an external data store through kine (SQL databases, NATS)."""

    data_source_url: str | None = Field(
        default=None, alias="dataSourceURL", description="kine data source URL, inline."
    )
    data_source_secret_name: str | None = Field(
        default=None,
        alias="dataSourceSecretName",
        description=(
            f"Secret in the Cluster's namespace whose {KINE_DATASOURCE_SECRET_KEY} key holds "
            "the URL; keeps credentials out of the Cluster object."
        ),
    )
    data_store_ref: DataStoreRef | None = Field(
        default=None,
        alias="dataStoreRef",
        description=(
            "Keep the data on a shared DataStore (mothership.io) instead of a URL: the "
            "operator creates the database, the user and their Secret. Exclusive with "
            "dataSourceURL and dataSourceSecretName. mothership's own: not in k0smotron."
        ),
    )


class NatsSpec(KubeModel):
    """Embedded NATS JetStream store (experimental; the replica count cannot change)."""

    persistence: StoragePersistenceSpec = Field(
        default_factory=StoragePersistenceSpec, description="Volume of each control plane pod."
    )


class StorageSpec(KubeModel):
    """Which data store backs the Kubernetes API of the hosted cluster."""

    type: StorageType = Field(
        default="etcd",
        description="etcd (managed StatefulSet), kine (external store) or nats (embedded).",
    )
    kine: KineSpec = Field(default_factory=KineSpec, description="Used when type is kine.")
    etcd: EtcdSpec = Field(
        default_factory=EtcdSpec,
        description="Used when type is etcd.",
        json_schema_extra={"default": ETCD_SCHEMA_DEFAULT},
    )
    nats: NatsSpec = Field(default_factory=NatsSpec, description="Used when type is nats.")

    @property
    def managed_etcd(self) -> bool:
        """An etcd StatefulSet of the Cluster's own: type etcd without a DataStore."""
        return self.type == "etcd" and self.etcd.data_store_ref is None

    @property
    def shared_etcd(self) -> bool:
        """Keys under a prefix of the Cluster's own on an etcd DataStore."""
        return self.type == "etcd" and self.etcd.data_store_ref is not None


class PatchTarget(KubeModel):
    """Picks a generated object by kind and its app.kubernetes.io/component label."""

    kind: str = Field(description="Kind of the generated object, e.g. StatefulSet.")
    component: str = Field(description="Value of its app.kubernetes.io/component label.")


class PatchSpec(KubeModel):
    """A patch in one of the three formats Kubernetes knows."""

    type: PatchType = Field(
        description="json (RFC 6902), merge (RFC 7386) or strategic (Kubernetes merge)."
    )
    content: str = Field(description="The patch document, JSON or YAML.")


class ComponentPatch(KubeModel):
    """A last-mile change to a generated object, applied before it is sent to the API server."""

    target: PatchTarget = Field(description="Which generated object to patch.")
    patch: PatchSpec = Field(description="What to apply to it.")


class KubernetesImages(KubeModel):
    """Images of the kubernetes distribution, each a full reference with its tag.

    Unset means the upstream image: registry.k8s.io/kube-apiserver:<version> and so on for
    the Kubernetes components, the pinned konnectivity, kine and CoreDNS releases for the
    others. An operator started with a Kubernetes image template runs its own image for the
    control plane containers instead (see `mothership operator run
    --kubernetes-image-template`); a value given here still wins over that.
    """

    api_server: str | None = Field(
        default=None,
        alias="apiServer",
        description="kube-apiserver; default registry.k8s.io/kube-apiserver:<version>.",
    )
    controller_manager: str | None = Field(
        default=None,
        alias="controllerManager",
        description=(
            "kube-controller-manager; default registry.k8s.io/kube-controller-manager:<version>."
        ),
    )
    scheduler: str | None = Field(
        default=None,
        description="kube-scheduler; default registry.k8s.io/kube-scheduler:<version>.",
    )
    konnectivity_server: str | None = Field(
        default=None,
        alias="konnectivityServer",
        description=f"konnectivity server; default {DEFAULT_KONNECTIVITY_SERVER_IMAGE}.",
    )
    kine: str | None = Field(
        default=None,
        description=(
            f"kine sidecar, used with storage kine and nats; default {DEFAULT_KINE_IMAGE}. "
            "For nats it must be built with embedded NATS (the upstream image is)."
        ),
    )
    kube_proxy: str | None = Field(
        default=None,
        alias="kubeProxy",
        description=(
            "kube-proxy DaemonSet in the tenant (runs on its worker nodes); default "
            "registry.k8s.io/kube-proxy:<version>."
        ),
    )
    core_dns: str | None = Field(
        default=None,
        alias="coreDNS",
        description=f"CoreDNS Deployment in the tenant; default {DEFAULT_COREDNS_IMAGE}.",
    )
    konnectivity_agent: str | None = Field(
        default=None,
        alias="konnectivityAgent",
        description=(
            "konnectivity agent DaemonSet in the tenant; default "
            f"{DEFAULT_KONNECTIVITY_AGENT_IMAGE}."
        ),
    )


class GoRuntime(KubeModel):
    """Go runtime settings of one component: how much memory it holds for how much CPU.

    A control plane at rest holds about twice its live heap (Go's default GOGC=100); on a
    mothership packed with control planes memory runs out before CPU, so trading a little
    CPU for memory is the usual tuning (measured with `mothership bench density`).
    """

    go_gc: int | None = Field(
        default=None,
        alias="goGC",
        ge=10,
        le=1000,
        description=(
            "GOGC: how much the heap may grow between collections, in percent (Go's default "
            "100). 50 holds about a third less memory for a little more CPU."
        ),
    )
    go_memory_limit: Quantity | None = Field(
        default=None,
        alias="goMemoryLimit",
        description=(
            "GOMEMLIMIT, a soft limit: the runtime collects harder as memory nears it. Keep "
            "it above what the component needs when busy (kube-apiserver of a small cluster: "
            "150Mi or more); below that it spends its CPU collecting."
        ),
    )


class ComponentTuning(GoRuntime):
    """Go runtime settings and extra flags of one component."""

    flags: list[str] | None = Field(
        default=None,
        description=(
            "Extra flags, --name=value; a flag the operator also sets is replaced by this one, "
            "except the ones that wire the control plane together (refused by admission)."
        ),
    )


class KubernetesTuning(KubeModel):
    """Per-component tuning of the kubernetes distribution's control plane.

    kube-apiserver's own flags (watch cache sizes, request limits) go in
    spec.controlPlaneFlags, as with k0smotron; its Go runtime here.
    """

    api_server: GoRuntime = Field(
        default_factory=GoRuntime,
        alias="apiServer",
        description="kube-apiserver's Go runtime (flags: spec.controlPlaneFlags).",
    )
    controller_manager: ComponentTuning = Field(
        default_factory=ComponentTuning,
        alias="controllerManager",
        description=(
            "kube-controller-manager, e.g. flags [--controllers=*,bootstrapsigner,"
            "tokencleaner,-attachdetach] to leave out a controller nobody uses."
        ),
    )
    scheduler: ComponentTuning = Field(
        default_factory=ComponentTuning, description="kube-scheduler."
    )
    kine: ComponentTuning = Field(
        default_factory=ComponentTuning,
        description=(
            "kine (storage kine and nats), e.g. flags [--datastore-poll-interval=5s] (default "
            "10s on SQLite, whose only writer is this kine, else kine's 1s)."
        ),
    )
    konnectivity_server: ComponentTuning = Field(
        default_factory=ComponentTuning,
        alias="konnectivityServer",
        description="konnectivity server.",
    )


class JWTIssuer(KubeModel):
    """An OpenID Connect issuer the tenant's API server trusts for user tokens."""

    url: str = Field(
        description=(
            "The issuer URL, https:// and exactly as its tokens' iss claim says; the API server "
            "reads <url>/.well-known/openid-configuration and the keys it names from there."
        )
    )
    audiences: list[str] = Field(
        min_length=1,
        description=(
            "Accepted aud values (the client ID the users log in with); a token must carry one."
        ),
    )
    certificate_authority: str | None = Field(
        default=None,
        alias="certificateAuthority",
        description=(
            "PEM certificates that verify the issuer's TLS; unset: the API server image's "
            "system roots."
        ),
    )


# CEL expressions of the authentication configuration: far above any claim mapping, and short
# enough for the webhook's native CEL parser (webhooks/cel_syntax.py) to parse any shape.
MAX_EXPRESSION = 4096


class PrefixedClaim(KubeModel):
    """A token claim, or a CEL expression over the claims, mapped to a Kubernetes user
    attribute. Exactly one of claim and expression; prefix goes with claim only."""

    claim: str | None = Field(
        default=None, min_length=1, description="The claim, e.g. email, sub or groups."
    )
    prefix: str | None = Field(
        default=None,
        description=(
            'Put before each value of claim, e.g. "oidc:", so these names cannot collide with '
            'the tenant\'s own users and groups; required with claim, may be ""; not with '
            "expression (the expression adds its own)."
        ),
    )
    expression: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EXPRESSION,
        description=(
            'A CEL expression over the token\'s claims (variable claims), e.g. "oidc:" + '
            "claims.sub; for groups it may return a list. An expression that reads "
            "claims.email must check claims.email_verified somewhere in the authenticator."
        ),
    )


class ClaimOrExpression(KubeModel):
    """A claim, or a CEL expression over the claims, that gives one value."""

    claim: str | None = Field(default=None, min_length=1, description="The claim, e.g. sub.")
    expression: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EXPRESSION,
        description="A CEL expression over claims.",
    )


class ExtraMapping(KubeModel):
    """An extra attribute of the user (seen by authorization webhooks and in audit logs)."""

    key: str = Field(
        min_length=1,
        description=(
            "A lowercase, domain-prefixed key, e.g. example.com/tenant (not under k8s.io or "
            "kubernetes.io)."
        ),
    )
    value_expression: str = Field(
        alias="valueExpression",
        min_length=1,
        max_length=MAX_EXPRESSION,
        description="A CEL expression over claims giving a string or a list of strings.",
    )


class JWTClaimMappings(KubeModel):
    """Which claims, or which expressions over them, name the user, its groups, its UID and
    extra attributes."""

    username: PrefixedClaim = Field(description="The claim or expression that names the user.")
    groups: PrefixedClaim | None = Field(
        default=None,
        description="The claim (a string or a list) or expression that names the user's groups.",
    )
    uid: ClaimOrExpression | None = Field(
        default=None, description="The claim or expression that gives the user's UID."
    )
    extra: list[ExtraMapping] | None = Field(
        default=None, max_length=64, description="Extra attributes, each from an expression."
    )


class JWTClaimValidationRule(KubeModel):
    """A condition a token must meet: a claim with one value, or a CEL expression over the
    claims that must be true."""

    claim: str | None = Field(default=None, min_length=1, description="The claim.")
    required_value: str | None = Field(
        default=None,
        alias="requiredValue",
        description='Its required value (with claim; unset means "").',
    )
    expression: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EXPRESSION,
        description="A CEL expression over claims that must be true, e.g. claims.email_verified.",
    )
    message: str | None = Field(
        default=None, description="What the API server logs when the expression is false."
    )


class UserValidationRule(KubeModel):
    """A condition on the user the mappings made (variable user: username, uid, groups,
    extra), checked after them."""

    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION,
        description=(
            'A CEL expression that must be true, e.g. !user.username.startsWith("system:").'
        ),
    )
    message: str | None = Field(
        default=None, description="What the API server logs when the expression is false."
    )


class JWTAuthenticator(KubeModel):
    """One trusted issuer, in the shape of Kubernetes' AuthenticationConfiguration jwt
    entry."""

    issuer: JWTIssuer = Field(description="The issuer and the audiences accepted from it.")
    claim_mappings: JWTClaimMappings = Field(
        alias="claimMappings",
        description="Claims or expressions that name the user, its groups, UID and extra.",
    )
    claim_validation_rules: list[JWTClaimValidationRule] | None = Field(
        default=None,
        max_length=64,
        alias="claimValidationRules",
        description=(
            "Conditions a token must meet, e.g. claim hd with requiredValue example.com, or "
            "an expression."
        ),
    )
    user_validation_rules: list[UserValidationRule] | None = Field(
        default=None,
        max_length=64,
        alias="userValidationRules",
        description="Conditions on the mapped user, e.g. no name under system:.",
    )


class KubernetesAuthentication(KubeModel):
    """How the tenant's API server authenticates users besides client certificates."""

    jwt: list[JWTAuthenticator] | None = Field(
        default=None,
        max_length=64,
        description=(
            "OpenID Connect issuers whose ID tokens the tenant's API server accepts. Changed "
            "in place: the API server reloads the file, no pod restarts once it is set."
        ),
    )


class KubernetesSpec(KubeModel):
    """Settings of the kubernetes distribution (ignored by k0s).

    Network settings are read from the same place k0s reads them, so one manifest serves
    both distributions: spec.k0sConfig.spec.network.serviceCIDR (default 10.96.0.0/12),
    .podCIDR (default 10.244.0.0/16) and .clusterDomain (default cluster.local).
    """

    images: KubernetesImages = Field(
        default_factory=KubernetesImages,
        description="Per-component image overrides; unset components use the defaults.",
    )
    tuning: KubernetesTuning = Field(
        default_factory=KubernetesTuning,
        description="Per-component Go runtime settings and extra flags; unset keeps defaults.",
    )
    authentication: KubernetesAuthentication | None = Field(
        default=None,
        description=(
            "Users from OpenID Connect identity providers (Kubernetes' structured "
            "authentication configuration)."
        ),
    )


# --- Cluster -----------------------------------------------------------------------------------


def k0s_image_tag(version: str) -> str:
    """Image tag for a k0s version: ``v1.30.1+k0s.0`` and ``v1.30.1`` both become ``-k0s.N``.

    Users write versions the way k0s prints them (``+k0s.N``) or without a suffix; image tags
    cannot carry ``+``, so the suffix is rewritten or added.
    """
    tag = version.replace("+k0s.", "-k0s.", 1)
    if "-k0s." not in tag:
        tag = f"{tag}-{K0S_TAG_SUFFIX}"
    return tag


class ClusterSpec(KubeModel):
    """Desired state of a hosted control plane."""

    distribution: Distribution = Field(
        default=DEFAULT_DISTRIBUTION,
        description=(
            "What runs the control plane: k0s (one k0s controller container per pod, as "
            "k0smotron does) or kubernetes (upstream kube-apiserver, kube-controller-manager, "
            "kube-scheduler and konnectivity-server as separate containers, plus a kine sidecar "
            "for storage kine and nats). Fixed at creation. Not in k0smotron."
        ),
    )
    kubernetes: KubernetesSpec | None = Field(
        default=None,
        description="Images and settings of the kubernetes distribution. Not in k0smotron.",
    )
    remote_host_cluster: RemoteHostClusterSpec | None = Field(
        default=None,
        alias="remoteHostCluster",
        description="Run the control plane in another cluster instead of this one.",
    )
    replicas: int = Field(
        default=1,
        ge=0,
        description="Number of control plane pods; more than one needs etcd, kine or nats.",
    )
    image: str = Field(
        default=DEFAULT_K0S_IMAGE,
        description=(
            "k0s image repository without tag; the tag comes from version. Distribution "
            "kubernetes uses spec.kubernetes.images instead."
        ),
    )
    service_account: str | None = Field(
        default=None,
        alias="serviceAccount",
        description="ServiceAccount for the control plane and etcd pods.",
    )
    version: str | None = Field(
        default=None,
        description=(
            "k0s version, e.g. v1.30.1-k0s.0; with distribution kubernetes a Kubernetes "
            "version, e.g. v1.35.4. The operator's default if unset."
        ),
    )
    external_address: str | None = Field(
        default=None,
        alias="externalAddress",
        description=(
            "Address clients and nodes use to reach the API server. Leave unset to have it "
            "detected; the detected value is reported in status.externalAddress."
        ),
    )
    ingress: IngressSpec | None = Field(
        default=None, description="Expose the control plane through an Ingress instead."
    )
    service: ServiceSpec = Field(
        default_factory=ServiceSpec,
        description="Service in front of the control plane.",
        json_schema_extra={"default": SERVICE_SCHEMA_DEFAULT},
    )
    persistence: PersistenceSpec = Field(
        default_factory=PersistenceSpec, description="Volume for the k0s data directory."
    )
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="Data store behind the Kubernetes API."
    )
    k0s_config: FreeForm | None = Field(
        default=None,
        alias="k0sConfig",
        description=(
            "A k0s ClusterConfig; fields the operator owns (API address, ports, storage) are "
            "overwritten."
        ),
    )
    certificate_refs: list[CertificateRef] | None = Field(
        default=None,
        alias="certificateRefs",
        description="Bring-your-own certificates instead of generated ones.",
    )
    manifests: list[FreeForm] | None = Field(
        default=None,
        description=(
            "core/v1 Volumes mounted under /var/lib/k0s/manifests/<name>; k0s applies what "
            "they contain as one stack per volume."
        ),
    )
    mounts: list[Mount] | None = Field(
        default=None, description="Extra volumes mounted into the control plane container."
    )
    control_plane_flags: list[str] | None = Field(
        default=None,
        alias="controlPlaneFlags",
        description=(
            "Extra `k0s controller` flags, each as one --flag=value string; with distribution "
            "kubernetes extra kube-apiserver flags, replacing the operator's of the same name."
        ),
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Control plane metrics sidecars."
    )
    topology_spread_constraints: list[FreeForm] | None = Field(
        default=None,
        alias="topologySpreadConstraints",
        description="core/v1 TopologySpreadConstraints for both the k0s and the etcd pods.",
    )
    resources: FreeForm | None = Field(
        default=None,
        description=(
            "core/v1 ResourceRequirements for the control plane container (kube-apiserver "
            "with distribution kubernetes)."
        ),
    )
    kubeconfig_secret_metadata: SecretMetadata | None = Field(
        default=None,
        alias="kubeconfigSecretMetadata",
        description="Labels and annotations for the generated admin kubeconfig Secret.",
    )
    patches: list[ComponentPatch] | None = Field(
        default=None,
        description="Patches applied to generated objects, matched by kind and component label.",
    )

    def image_ref(self, default_version: str) -> str:
        """Full k0s image reference; ``default_version`` stands in when version is unset."""
        return f"{self.image or DEFAULT_K0S_IMAGE}:{k0s_image_tag(self.version or default_version)}"


class Condition(KubeModel):
    """A metav1.Condition: one observed aspect of an object's state."""

    type: str = Field(description="What aspect this condition describes, in CamelCase.")
    status: Literal["True", "False", "Unknown"] = Field(description="Whether it holds.")
    reason: str = Field(description="Machine-readable CamelCase cause of the last transition.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: str = Field(
        alias="lastTransitionTime",
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        ge=0,
        description="metadata.generation the condition was computed from.",
    )


class ClusterStatusV1beta1(KubeModel):
    """v1beta1 status fields, kept so that reading through v1beta1 still shows them."""

    reconciliation_status: str | None = Field(
        default=None, alias="reconciliationStatus", description="Free-text reconcile outcome."
    )
    ready: bool | None = Field(default=None, description="Whether the control plane was ready.")


class ClusterStatusDeprecated(KubeModel):
    """Status fields on their way out, grouped by the version that still needs them."""

    v1beta1: ClusterStatusV1beta1 | None = Field(
        default=None, description="Fields only v1beta1 clients read."
    )


class ClusterStatus(KubeModel):
    """Observed state of a hosted control plane."""

    replicas: int | None = Field(default=None, description="Control plane pods that exist.")
    ready_replicas: int | None = Field(
        default=None, alias="readyReplicas", description="Control plane pods that are Ready."
    )
    updated_replicas: int | None = Field(
        default=None,
        alias="updatedReplicas",
        description="Control plane pods already running the current spec.",
    )
    selector: str | None = Field(
        default=None, description="Label selector of the control plane pods, for scaling tools."
    )
    version: str | None = Field(
        default=None, description="k0s version the control plane pods run (not in k0smotron)."
    )
    external_address: str | None = Field(
        default=None,
        alias="externalAddress",
        description="Address the API server is reached at, given or detected (not in k0smotron).",
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Current conditions; Available summarises the others."
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="metadata.generation this status describes (not in k0smotron).",
    )
    deprecated: ClusterStatusDeprecated | None = Field(
        default=None, description="Status kept for deprecated API versions."
    )


CLUSTER_PRINTER_COLUMNS = (
    PrinterColumn("Replicas", ".spec.replicas", "integer", "Desired control plane pods."),
    PrinterColumn("Ready", ".status.readyReplicas", "integer", "Ready control plane pods."),
    PrinterColumn("Version", ".spec.version", "string", "Requested k0s version."),
    PrinterColumn("Endpoint", ".status.externalAddress", "string", "API server address."),
    PrinterColumn(
        "Available",
        '.status.conditions[?(@.type=="Available")].status',
        "string",
        "Whether the control plane serves requests.",
    ),
    PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
)


CLUSTER_CRD = CRDInfo(
    group=GROUP,
    kind="Cluster",
    plural="clusters",
    singular="cluster",
    short_names=("kmc",),
    scale=(".spec.replicas", ".status.replicas", ".status.selector"),
)


class Cluster(TopLevel):
    """A hosted k0s control plane (k0smotron.io/v1beta2, the storage version)."""

    CRD: ClassVar[CRDInfo] = CLUSTER_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta2", storage=True, extra_printer_columns=CLUSTER_PRINTER_COLUMNS
    )

    api_version: Literal["k0smotron.io/v1beta2"] = Field(
        default="k0smotron.io/v1beta2", alias="apiVersion", description="API group and version."
    )
    kind: Literal["Cluster"] = Field(default="Cluster", description="Object kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ClusterSpec = Field(default_factory=ClusterSpec, description="Desired state.")
    status: ClusterStatus | None = Field(default=None, description="Observed state.")

    @field_validator("spec", mode="before")
    @classmethod
    def _spec_null_means_defaults(cls, value: Any) -> Any:
        # k0smotron's own docs create clusters with ``spec: null``: "all defaults".
        return {} if value is None else value


# --- JoinTokenRequest --------------------------------------------------------------------------


class JoinTokenClusterRef(KubeModel):
    """Names the Cluster to issue a token for, possibly in another namespace."""

    name: str = Field(description="Name of the Cluster.")
    namespace: str | None = Field(
        default=None, description="Namespace of the Cluster; the request's own if unset."
    )


class JoinTokenRequestSpec(KubeModel):
    """Ask for a k0s join token for a Cluster, named by clusterName or clusterRef."""

    # k0smotron's v1beta2 only has clusterName (required), yet its join-nodes documentation
    # shows a v1beta2 request with clusterRef. Accepting both lets either manifest apply.

    cluster_name: str | None = Field(
        default=None,
        alias="clusterName",
        min_length=1,
        max_length=63,
        description="Name of the Cluster, in the namespace of this request.",
    )
    cluster_ref: JoinTokenClusterRef | None = Field(
        default=None,
        alias="clusterRef",
        description="Alternative to clusterName as written in k0smotron's docs.",
    )
    expiry: str = Field(
        default="0s",
        description="Token lifetime as a Go duration (1.5h, 2h45m, 300ms); 0s never expires.",
    )
    role: NodeRole = Field(default="worker", description="Kind of node the token lets join.")
    # No schema default: a request that does not ask stays exactly as written.
    single_use: bool | None = Field(
        default=None,
        alias="singleUse",
        description="Revoke the token once one node has joined with it (worker tokens only): "
        "the operator deletes the bootstrap token in the tenant within seconds of that node "
        "registering. mothership's own field; k0smotron has none.",
    )

    @model_validator(mode="after")
    def _names_a_cluster(self) -> JoinTokenRequestSpec:
        if not self.cluster_name and self.cluster_ref is None:
            raise ValueError("one of clusterName or clusterRef must be set")
        return self


class JoinTokenRequestStatusV1beta1(KubeModel):
    """v1beta1 status fields, kept so that reading through v1beta1 still shows them."""

    reconciliation_status: str | None = Field(
        default=None, alias="reconciliationStatus", description="Free-text reconcile outcome."
    )
    cluster_uid: str | None = Field(
        default=None, alias="clusterUID", description="UID of the Cluster the token is for."
    )


class JoinTokenRequestStatusDeprecated(KubeModel):
    """Status fields on their way out, grouped by the version that still needs them."""

    v1beta1: JoinTokenRequestStatusV1beta1 | None = Field(
        default=None, description="Fields only v1beta1 clients read."
    )


class JoinTokenRequestStatus(KubeModel):
    """Outcome of a join token request."""

    token_id: str | None = Field(
        default=None,
        alias="tokenID",
        description="ID of the issued token; the token itself is in a Secret of the same name.",
    )
    conditions: list[Condition] | None = Field(default=None, description="Current conditions.")
    deprecated: JoinTokenRequestStatusDeprecated | None = Field(
        default=None, description="Status kept for deprecated API versions."
    )


JOIN_TOKEN_REQUEST_CRD = CRDInfo(
    group=GROUP,
    kind="JoinTokenRequest",
    plural="jointokenrequests",
    singular="jointokenrequest",
    short_names=("jtr",),
    # The Cluster column points at a different field in each version, so every column is
    # declared per version (VersionInfo.extra_printer_columns) to keep them in order.
    printer_columns=(),
)


def jtr_printer_columns(cluster_path: str) -> tuple[PrinterColumn, ...]:
    """JoinTokenRequest columns, given where this version names the Cluster."""
    return (
        PrinterColumn("Cluster", cluster_path, "string", "Cluster the token is for."),
        PrinterColumn("Role", ".spec.role", "string", "Role of the joining node."),
        PrinterColumn("Expiry", ".spec.expiry", "string", "Token lifetime."),
        PrinterColumn("TokenID", ".status.tokenID", "string", "ID of the issued token."),
        PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
    )


class JoinTokenRequest(TopLevel):
    """A request for a node join token (k0smotron.io/v1beta2, the storage version)."""

    CRD: ClassVar[CRDInfo] = JOIN_TOKEN_REQUEST_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta2", storage=True, extra_printer_columns=jtr_printer_columns(".spec.clusterName")
    )

    api_version: Literal["k0smotron.io/v1beta2"] = Field(
        default="k0smotron.io/v1beta2", alias="apiVersion", description="API group and version."
    )
    kind: Literal["JoinTokenRequest"] = Field(
        default="JoinTokenRequest", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: JoinTokenRequestSpec = Field(description="What token to issue.")
    status: JoinTokenRequestStatus | None = Field(default=None, description="Observed state.")

    def target_cluster(self) -> tuple[str | None, str]:
        """(namespace, name) of the Cluster the token is for; namespace None if unknown.

        Precedence mirrors k0smotron: ``clusterName`` in the request's namespace unless the
        v1beta1 namespace annotation says otherwise; ``clusterRef`` only when no name is set.
        """
        own_ns = self.metadata.get("namespace")
        annotations = self.metadata.get("annotations") or {}
        if self.spec.cluster_name:
            return annotations.get(CLUSTER_REF_NAMESPACE_ANNOTATION, own_ns), self.spec.cluster_name
        ref = self.spec.cluster_ref
        assert ref is not None  # guaranteed by the spec validator
        return ref.namespace or annotations.get(CLUSTER_REF_NAMESPACE_ANNOTATION, own_ns), ref.name
