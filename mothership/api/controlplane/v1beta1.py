"""controlplane.cluster.x-k8s.io/v1beta1: the version of Cluster API's v1beta1 contract.

Still served (deprecated) for manifests written against it; stored as v1beta2 and translated
by the conversion webhook (:mod:`.convert`). The spec is the k0smotron.io/v1beta1 Cluster spec
and the status has the v1beta1 contract's fields (ready, initialized, unavailableReplicas).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from mothership.api.base import CRDInfo, KubeModel, PrinterColumn, TopLevel, VersionInfo
from mothership.api.controlplane.v1beta2 import (
    CLUSTER_NAME_COLUMN,
    CONTROL_PLANE_CRD,
    GROUP,
    TEMPLATE_CRD,
    TemplateMeta,
)
from mothership.api.k0smotron.v1beta1 import ClusterSpec
from mothership.api.k0smotron.v1beta2 import Condition

API_VERSION = f"{GROUP}/v1beta1"
DEPRECATION = f"{API_VERSION} is deprecated; use {GROUP}/v1beta2 (Cluster API contract v1beta2)"


class Initialization(KubeModel):
    """What Cluster API waits for before it provisions the first worker Machines."""

    control_plane_initialized: bool | None = Field(
        default=None,
        alias="controlPlaneInitialized",
        description="True once the API server has answered for the first time; never reset.",
    )


class K0smotronControlPlaneStatus(KubeModel):
    """Observed state, in the shape of Cluster API's v1beta1 control-plane contract."""

    ready: bool | None = Field(default=None, description="At least one control-plane pod is ready.")
    initialized: bool | None = Field(
        default=None, description="The API server has answered once (contract field)."
    )
    initialization: Initialization | None = Field(
        default=None, description="The same milestone in the v1beta2 contract's shape."
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
    updated_replicas: int | None = Field(
        default=None, alias="updatedReplicas", description="Pods running the current spec."
    )
    ready_replicas: int | None = Field(
        default=None, alias="readyReplicas", description="Control-plane pods that are Ready."
    )
    unavailable_replicas: int | None = Field(
        default=None, alias="unavailableReplicas", description="Control-plane pods not Ready."
    )
    selector: str | None = Field(
        default=None, description="Label selector of the control-plane pods (scale subresource)."
    )
    conditions: list[Condition] | None = Field(default=None, description="Current conditions.")


PRINTER_COLUMNS = (
    CLUSTER_NAME_COLUMN,
    PrinterColumn("API Server Available", ".status.ready", "boolean", "The API server answers."),
    PrinterColumn("Desired", ".spec.replicas", "integer", "Control-plane pods asked for.", 10),
    PrinterColumn("Replicas", ".status.replicas", "integer", "Control-plane pods that exist."),
    PrinterColumn("Ready", ".status.readyReplicas", "integer", "Ready control-plane pods."),
    PrinterColumn("Updated", ".status.updatedReplicas", "integer", "Pods on the current spec."),
    PrinterColumn(
        "Unavailable", ".status.unavailableReplicas", "integer", "Control-plane pods not Ready."
    ),
    PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
    PrinterColumn("Version", ".spec.version", "string", "Version asked for."),
)


class K0smotronControlPlane(TopLevel):
    """A hosted control plane for a Cluster API Cluster (deprecated version)."""

    CRD: ClassVar[CRDInfo] = CONTROL_PLANE_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta1",
        storage=False,
        deprecated=True,
        deprecation_warning=DEPRECATION,
        extra_printer_columns=PRINTER_COLUMNS,
    )

    api_version: Literal["controlplane.cluster.x-k8s.io/v1beta1"] = Field(
        default="controlplane.cluster.x-k8s.io/v1beta1",
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
    """A K0smotronControlPlane for ClusterClass topologies (deprecated version)."""

    CRD: ClassVar[CRDInfo] = TEMPLATE_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta1", storage=False, deprecated=True, deprecation_warning=DEPRECATION
    )

    api_version: Literal["controlplane.cluster.x-k8s.io/v1beta1"] = Field(
        default="controlplane.cluster.x-k8s.io/v1beta1",
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
