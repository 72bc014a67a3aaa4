"""controlplane.cluster.x-k8s.io/v1beta2: K0smotronControlPlane and its template.

Kinds, field names and the CRD labels follow k0smotron so its Cluster API manifests apply
unchanged; the spec is exactly the k0smotron.io/v1beta2 Cluster spec, imported rather than
repeated so the two cannot drift. The status is Cluster API's v1beta2 control-plane contract.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from mothership.api.base import CRDInfo, KubeModel, PrinterColumn, TopLevel, VersionInfo
from mothership.api.k0smotron.v1beta2 import ClusterSpec, Condition

GROUP = "controlplane.cluster.x-k8s.io"
API_VERSION = f"{GROUP}/v1beta2"
FINALIZER = "k0smotron.controlplane.cluster.x-k8s.io"
"""k0smotron's finalizer name: a control plane moved over from k0smotron keeps working."""

PROVIDER_LABELS = (
    # Cluster API reads which of our versions serves each contract version from these.
    ("cluster.x-k8s.io/v1beta1", "v1beta1"),
    ("cluster.x-k8s.io/v1beta2", "v1beta2"),
    ("cluster.x-k8s.io/provider", "control-plane-k0smotron"),
)

CONDITION_AVAILABLE = "Available"

CLUSTER_NAME_COLUMN = PrinterColumn(
    "Cluster",
    ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']",
    "string",
    "The Cluster API Cluster this control plane belongs to.",
)

CONTROL_PLANE_CRD = CRDInfo(
    group=GROUP,
    kind="K0smotronControlPlane",
    plural="k0smotroncontrolplanes",
    singular="k0smotroncontrolplane",
    categories=("cluster-api",),
    scale=(".spec.replicas", ".status.replicas", ".status.selector"),
    labels=PROVIDER_LABELS,
)

TEMPLATE_CRD = CRDInfo(
    group=GROUP,
    kind="K0smotronControlPlaneTemplate",
    plural="k0smotroncontrolplanetemplates",
    singular="k0smotroncontrolplanetemplate",
    categories=("cluster-api",),
    status_subresource=False,
    labels=PROVIDER_LABELS,
)


class Initialization(KubeModel):
    """What Cluster API waits for before it provisions the first worker Machines."""

    control_plane_initialized: bool | None = Field(
        default=None,
        alias="controlPlaneInitialized",
        description="True once the API server has answered for the first time; never reset.",
    )


class K0smotronControlPlaneStatus(KubeModel):
    """Observed state, in the shape of Cluster API's v1beta2 control-plane contract."""

    initialization: Initialization | None = Field(
        default=None, description="Initial provisioning milestones (contract field)."
    )
    external_managed_control_plane: bool | None = Field(
        default=None,
        alias="externalManagedControlPlane",
        description="Always true: the control plane runs as pods, with no control-plane Nodes.",
    )
    version: str | None = Field(
        default=None, description="Lowest version the ready control-plane pods run."
    )
    replicas: int | None = Field(default=None, description="Control-plane pods that exist.")
    ready_replicas: int | None = Field(
        default=None, alias="readyReplicas", description="Control-plane pods that are Ready."
    )
    available_replicas: int | None = Field(
        default=None,
        alias="availableReplicas",
        description="Control-plane pods that are Ready (a pod is available when ready).",
    )
    up_to_date_replicas: int | None = Field(
        default=None,
        alias="upToDateReplicas",
        description="Control-plane pods running the current spec.",
    )
    selector: str | None = Field(
        default=None, description="Label selector of the control-plane pods (scale subresource)."
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="metadata.generation this status describes.",
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Current conditions; Available is the contract's summary."
    )


PRINTER_COLUMNS = (
    CLUSTER_NAME_COLUMN,
    PrinterColumn("Desired", ".spec.replicas", "integer", "Control-plane pods asked for.", 10),
    PrinterColumn("Replicas", ".status.replicas", "integer", "Control-plane pods that exist."),
    PrinterColumn("Ready", ".status.readyReplicas", "integer", "Ready control-plane pods."),
    PrinterColumn(
        "UpToDate", ".status.upToDateReplicas", "integer", "Pods running the current spec."
    ),
    PrinterColumn(
        "Available", ".status.availableReplicas", "integer", "Available control-plane pods."
    ),
    PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
    PrinterColumn("Version", ".spec.version", "string", "Version asked for."),
)


class K0smotronControlPlane(TopLevel):
    """A hosted control plane for a Cluster API Cluster (storage version)."""

    CRD: ClassVar[CRDInfo] = CONTROL_PLANE_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta2", storage=True, extra_printer_columns=PRINTER_COLUMNS
    )

    api_version: Literal["controlplane.cluster.x-k8s.io/v1beta2"] = Field(
        default="controlplane.cluster.x-k8s.io/v1beta2",
        alias="apiVersion",
        description="API group and version.",
    )
    kind: Literal["K0smotronControlPlane"] = Field(
        default="K0smotronControlPlane", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ClusterSpec = Field(
        default_factory=ClusterSpec, description="The control plane: a k0smotron.io Cluster spec."
    )
    status: K0smotronControlPlaneStatus | None = Field(default=None, description="Observed state.")

    @field_validator("spec", mode="before")
    @classmethod
    def _spec_null_means_defaults(cls, value: Any) -> Any:
        return {} if value is None else value


class TemplateMeta(KubeModel):
    """Labels and annotations given to control planes made from the template."""

    labels: dict[str, str] | None = Field(default=None, description="Labels to add.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations to add.")


class K0smotronControlPlaneTemplateResource(KubeModel):
    """The control plane a ClusterClass stamps out."""

    metadata: TemplateMeta | None = Field(default=None, description="Metadata for the copies.")
    spec: ClusterSpec = Field(
        default_factory=ClusterSpec, description="The spec each K0smotronControlPlane gets."
    )


class K0smotronControlPlaneTemplateSpec(KubeModel):
    """Holds the template."""

    template: K0smotronControlPlaneTemplateResource = Field(
        default_factory=K0smotronControlPlaneTemplateResource, description="The template."
    )


class K0smotronControlPlaneTemplate(TopLevel):
    """A K0smotronControlPlane for ClusterClass topologies (storage version)."""

    CRD: ClassVar[CRDInfo] = TEMPLATE_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta2", storage=True, extra_printer_columns=()
    )

    api_version: Literal["controlplane.cluster.x-k8s.io/v1beta2"] = Field(
        default="controlplane.cluster.x-k8s.io/v1beta2",
        alias="apiVersion",
        description="API group and version.",
    )
    kind: Literal["K0smotronControlPlaneTemplate"] = Field(
        default="K0smotronControlPlaneTemplate", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: K0smotronControlPlaneTemplateSpec = Field(
        default_factory=K0smotronControlPlaneTemplateSpec, description="The template."
    )
