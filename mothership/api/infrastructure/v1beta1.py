"""infrastructure.cluster.x-k8s.io/v1beta1: the version k0smotron's documentation writes.

Still served (deprecated) so that k0smotron's RemoteMachine, PooledRemoteMachine,
RemoteMachineTemplate and RemoteCluster manifests apply as written; stored as v1beta2 and
translated by :mod:`.convert`. The v1beta1 layout names the clean-up commands
`customCleanUpCommands` and reports `status.ready` (and failure fields) where v1beta2 has
`status.initialization.provisioned` and conditions. Everything else is v1beta2's, so the
models reuse v1beta2's and change only those fields.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from mothership.api.base import CRDInfo, KubeModel, TopLevel, VersionInfo
from mothership.api.infrastructure import v1beta2

GROUP = v1beta2.GROUP
API_VERSION = f"{GROUP}/v1beta1"
DEPRECATION = f"{API_VERSION} is deprecated; use {GROUP}/v1beta2 (Cluster API contract v1beta2)"
VERSION = VersionInfo(
    name="v1beta1", storage=False, deprecated=True, deprecation_warning=DEPRECATION
)

_CLEAN_UP = (
    "Commands run when the Machine goes; the default leaves the cluster (mothership-node-leave)."
)


class RemoteMachineSpec(v1beta2.RemoteMachineSpec):
    """An existing machine, given directly or taken from a pool (v1beta1 spelling)."""

    clean_up_commands: list[str] | None = Field(
        default=None, alias="customCleanUpCommands", description=_CLEAN_UP
    )


class PooledMachineSpec(v1beta2.PooledMachineSpec):
    """A pooled machine's connection (v1beta1 spelling)."""

    clean_up_commands: list[str] | None = Field(
        default=None, alias="customCleanUpCommands", description=_CLEAN_UP
    )


class PooledRemoteMachineSpec(v1beta2.PooledRemoteMachineSpec):
    machine: PooledMachineSpec = Field(description="How to reach the machine.")


class ReadyStatus(KubeModel):
    """Cluster API's v1beta1 infrastructure contract: one `ready` flag."""

    ready: bool | None = Field(default=None, description="The infrastructure is ready.")


class RemoteMachineStatus(ReadyStatus):
    addresses: list[v1beta2.MachineAddress] | None = Field(
        default=None, description="Machine addresses."
    )
    failure_reason: str | None = Field(
        default=None, alias="failureReason", description="Why provisioning failed for good."
    )
    failure_message: str | None = Field(
        default=None, alias="failureMessage", description="The failure, for a human."
    )


class RemoteCluster(TopLevel):
    """The infrastructure of a Cluster whose control plane is hosted (deprecated version)."""

    CRD: ClassVar[CRDInfo] = v1beta2.RemoteCluster.CRD
    VERSION: ClassVar[VersionInfo] = VERSION

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta1"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta1", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["RemoteCluster"] = Field(default="RemoteCluster", description="Object kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: v1beta2.RemoteClusterSpec = Field(
        default_factory=v1beta2.RemoteClusterSpec, description="Spec."
    )
    status: ReadyStatus | None = Field(default=None, description="Observed state.")


class RemoteClusterTemplate(TopLevel):
    """A RemoteCluster for ClusterClass topologies (deprecated version)."""

    CRD: ClassVar[CRDInfo] = v1beta2.RemoteClusterTemplate.CRD
    VERSION: ClassVar[VersionInfo] = VERSION

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta1"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta1", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["RemoteClusterTemplate"] = Field(
        default="RemoteClusterTemplate", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: v1beta2.RemoteClusterTemplateSpec = Field(
        default_factory=v1beta2.RemoteClusterTemplateSpec, description="The template."
    )


class RemoteMachine(TopLevel):
    """An existing machine provisioned over SSH for a Machine (deprecated version)."""

    CRD: ClassVar[CRDInfo] = v1beta2.RemoteMachine.CRD
    VERSION: ClassVar[VersionInfo] = VERSION

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta1"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta1", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["RemoteMachine"] = Field(default="RemoteMachine", description="Object kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: RemoteMachineSpec = Field(default_factory=RemoteMachineSpec, description="Spec.")
    status: RemoteMachineStatus | None = Field(default=None, description="Observed state.")


class RemoteMachineTemplateResource(KubeModel):
    spec: RemoteMachineSpec = Field(default_factory=RemoteMachineSpec, description="Spec.")


class RemoteMachineTemplateSpec(KubeModel):
    template: RemoteMachineTemplateResource = Field(
        default_factory=RemoteMachineTemplateResource, description="The template."
    )


class RemoteMachineTemplate(TopLevel):
    """A RemoteMachine per Machine of a MachineDeployment (deprecated version)."""

    CRD: ClassVar[CRDInfo] = v1beta2.RemoteMachineTemplate.CRD
    VERSION: ClassVar[VersionInfo] = VERSION

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta1"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta1", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["RemoteMachineTemplate"] = Field(
        default="RemoteMachineTemplate", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: RemoteMachineTemplateSpec = Field(
        default_factory=RemoteMachineTemplateSpec, description="The template."
    )


class PooledRemoteMachine(TopLevel):
    """A machine waiting in a pool until a RemoteMachine reserves it (deprecated version)."""

    CRD: ClassVar[CRDInfo] = v1beta2.PooledRemoteMachine.CRD
    VERSION: ClassVar[VersionInfo] = VERSION

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta1"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta1", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["PooledRemoteMachine"] = Field(
        default="PooledRemoteMachine", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: PooledRemoteMachineSpec = Field(description="Pool and connection.")
    status: v1beta2.PooledRemoteMachineStatus | None = Field(
        default=None, description="Reservation."
    )
