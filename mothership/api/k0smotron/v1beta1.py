"""k0smotron.io/v1beta1: the deprecated version, still served so old manifests keep working.

Objects are stored as v1beta2; the API server calls the conversion webhook
(:mod:`mothership.api.k0smotron.convert`) to translate. Sub-objects that are identical in both
versions are imported from :mod:`.v1beta2`, as k0smotron itself does, so they cannot drift.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from mothership.api.base import CRDInfo, KubeModel, PrinterColumn, TopLevel, VersionInfo
from mothership.api.k0smotron.v1beta2 import (
    CLUSTER_CRD,
    DEFAULT_K0S_IMAGE,
    ETCD_SCHEMA_DEFAULT,
    JOIN_TOKEN_REQUEST_CRD,
    KINE_DATASOURCE_SECRET_KEY,
    SERVICE_SCHEMA_DEFAULT,
    CertificateRef,
    EtcdSpec,
    IngressSpec,
    KubeconfigRef,
    MonitoringSpec,
    Mount,
    NodeRole,
    PersistenceSpec,
    SecretMetadata,
    ServiceSpec,
    jtr_printer_columns,
)
from mothership.api.schema_markers import FreeForm

API_VERSION = "k0smotron.io/v1beta1"


class ClusterSpec(KubeModel):
    """Desired state of a hosted k0s control plane (v1beta1 layout)."""

    kubeconfig_ref: KubeconfigRef | None = Field(
        default=None,
        alias="kubeconfigRef",
        description="Run the control plane in the cluster this kubeconfig Secret points at.",
    )
    replicas: int = Field(
        default=1,
        ge=0,
        description="Number of control plane pods; more than one needs a kine data source.",
    )
    image: str = Field(
        default=DEFAULT_K0S_IMAGE,
        description="k0s image repository without tag; the tag comes from version.",
    )
    service_account: str | None = Field(
        default=None,
        alias="serviceAccount",
        description="ServiceAccount for the control plane and etcd pods.",
    )
    version: str | None = Field(
        default=None,
        description="k0s version, e.g. v1.30.1-k0s.0; the operator's default if unset.",
    )
    external_address: str | None = Field(
        default=None,
        alias="externalAddress",
        description="Address clients and nodes use to reach the API server; detected if unset.",
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
        default_factory=PersistenceSpec,
        description="Volume for the k0s data directory.",
        json_schema_extra={"default": {"type": "emptyDir"}},
    )
    kine_data_source_url: str | None = Field(
        default=None,
        alias="kineDataSourceURL",
        description="kine data source URL; setting it (or the Secret) replaces etcd with kine.",
    )
    kine_data_source_secret_name: str | None = Field(
        default=None,
        alias="kineDataSourceSecretName",
        description=(
            f"Secret in the Cluster's namespace whose {KINE_DATASOURCE_SECRET_KEY} key holds "
            "the kine data source URL."
        ),
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
        description="core/v1 Volumes mounted under /var/lib/k0s/manifests/<name>.",
    )
    mounts: list[Mount] | None = Field(
        default=None, description="Extra volumes mounted into the control plane container."
    )
    # The JSON name is k0smotron's v1beta1 spelling (sic); v1beta2 fixed it.
    controller_plane_flags: list[str] | None = Field(
        default=None,
        alias="controllerPlaneFlags",
        description="Extra `k0s controller` flags, each as one --flag=value string.",
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Control plane metrics sidecars."
    )
    etcd: EtcdSpec = Field(
        default_factory=EtcdSpec,
        description="The etcd StatefulSet, used unless a kine data source is set.",
        json_schema_extra={"default": ETCD_SCHEMA_DEFAULT},
    )
    topology_spread_constraints: list[FreeForm] | None = Field(
        default=None,
        alias="topologySpreadConstraints",
        description="core/v1 TopologySpreadConstraints for both the k0s and the etcd pods.",
    )
    resources: FreeForm | None = Field(
        default=None, description="core/v1 ResourceRequirements for the control plane container."
    )
    kubeconfig_secret_metadata: SecretMetadata | None = Field(
        default=None,
        alias="kubeconfigSecretMetadata",
        description="Labels and annotations for the generated admin kubeconfig Secret.",
    )


class ClusterStatus(KubeModel):
    """Observed state of a hosted control plane (v1beta1 layout)."""

    reconciliation_status: str | None = Field(
        default=None, alias="reconciliationStatus", description="Free-text reconcile outcome."
    )
    ready: bool | None = Field(default=None, description="Whether the control plane is ready.")
    replicas: int | None = Field(default=None, description="Control plane pods that exist.")
    selector: str | None = Field(
        default=None, description="Label selector of the control plane pods, for scaling tools."
    )


class Cluster(TopLevel):
    """A hosted k0s control plane (k0smotron.io/v1beta1, deprecated)."""

    CRD: ClassVar[CRDInfo] = CLUSTER_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta1",
        storage=False,
        deprecated=True,
        deprecation_warning="k0smotron.io/v1beta1 Cluster is deprecated; use k0smotron.io/v1beta2",
        # v1beta1 status has no readyReplicas, address or conditions: show what it has.
        extra_printer_columns=(
            PrinterColumn("Replicas", ".spec.replicas", "integer", "Desired control plane pods."),
            PrinterColumn(
                "Ready", ".status.ready", "boolean", "Whether the control plane is ready."
            ),
            PrinterColumn("Version", ".spec.version", "string", "Requested k0s version."),
            PrinterColumn(
                "Status", ".status.reconciliationStatus", "string", "Last reconcile outcome."
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )

    api_version: Literal["k0smotron.io/v1beta1"] = Field(
        default="k0smotron.io/v1beta1", alias="apiVersion", description="API group and version."
    )
    kind: Literal["Cluster"] = Field(default="Cluster", description="Object kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ClusterSpec = Field(default_factory=ClusterSpec, description="Desired state.")
    status: ClusterStatus | None = Field(default=None, description="Observed state.")

    @field_validator("spec", mode="before")
    @classmethod
    def _spec_null_means_defaults(cls, value: Any) -> Any:
        return {} if value is None else value


class ClusterRef(KubeModel):
    """Names the Cluster to issue a token for."""

    name: str = Field(description="Name of the Cluster.")
    namespace: str = Field(description="Namespace of the Cluster.")


class JoinTokenRequestSpec(KubeModel):
    """Ask for a k0s join token for a Cluster (v1beta1 layout)."""

    cluster_ref: ClusterRef = Field(alias="clusterRef", description="The Cluster to join.")
    expiry: str = Field(
        default="0s",
        description="Token lifetime as a Go duration (1.5h, 2h45m, 300ms); 0s never expires.",
    )
    role: NodeRole = Field(default="worker", description="Kind of node the token lets join.")
    # No schema default: a request that does not ask stays exactly as written.
    single_use: bool | None = Field(
        default=None,
        alias="singleUse",
        description="Revoke the token once one node has joined with it (worker tokens only). "
        "mothership's own field, in both versions so that it survives conversion.",
    )


class JoinTokenRequestStatus(KubeModel):
    """Outcome of a join token request (v1beta1 layout)."""

    reconciliation_status: str | None = Field(
        default=None, alias="reconciliationStatus", description="Free-text reconcile outcome."
    )
    token_id: str | None = Field(
        default=None, alias="tokenID", description="ID of the issued token."
    )
    cluster_uid: str | None = Field(
        default=None, alias="clusterUID", description="UID of the Cluster the token is for."
    )


class JoinTokenRequest(TopLevel):
    """A request for a node join token (k0smotron.io/v1beta1, deprecated)."""

    CRD: ClassVar[CRDInfo] = JOIN_TOKEN_REQUEST_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta1",
        storage=False,
        deprecated=True,
        deprecation_warning=(
            "k0smotron.io/v1beta1 JoinTokenRequest is deprecated; use k0smotron.io/v1beta2"
        ),
        extra_printer_columns=jtr_printer_columns(".spec.clusterRef.name"),
    )

    api_version: Literal["k0smotron.io/v1beta1"] = Field(
        default="k0smotron.io/v1beta1", alias="apiVersion", description="API group and version."
    )
    kind: Literal["JoinTokenRequest"] = Field(
        default="JoinTokenRequest", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: JoinTokenRequestSpec = Field(description="What token to issue.")
    status: JoinTokenRequestStatus | None = Field(default=None, description="Observed state.")
