"""infrastructure.cluster.x-k8s.io/v1beta2: RemoteCluster, RemoteMachine, their templates,
and PooledRemoteMachine (the storage version; v1beta1 is served too, see v1beta1.py).

Kinds, field names and defaults follow k0smotron so its manifests apply unchanged;
With k0smotron's `provisionJob` the bootstrap runs from a Kubernetes Job the user's
template describes (its image brings `ssh` and `scp`, it mounts the key) instead of from the
operator's own SSH client (render/provision_job.py).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from mothership.api.base import CRDInfo, KubeModel, PrinterColumn, TopLevel, VersionInfo
from mothership.api.k0smotron.v1beta2 import Condition
from mothership.api.schema_markers import FreeForm

GROUP = "infrastructure.cluster.x-k8s.io"
API_VERSION = f"{GROUP}/v1beta2"
MACHINE_FINALIZER = "remotemachine.k0smotron.io/finalizer"
"""k0smotron's finalizer name: a machine moved over from k0smotron keeps its clean-up."""
DEFAULT_WORKING_DIR = "/etc/k0smotron"
CONDITION_BOOTSTRAP_EXEC = "BootstrapExecSucceeded"

PROVIDER_LABELS = (
    # Cluster API reads which of our versions serves each contract version from these.
    ("cluster.x-k8s.io/v1beta1", "v1beta1"),
    ("cluster.x-k8s.io/v1beta2", "v1beta2"),
    ("cluster.x-k8s.io/provider", "infrastructure-k0smotron"),
)


def _crd(kind: str, plural: str, *, status: bool = True, columns: Any = ()) -> CRDInfo:
    return CRDInfo(
        group=GROUP,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        categories=("cluster-api",),
        status_subresource=status,
        labels=PROVIDER_LABELS,
        printer_columns=columns,
    )


class APIEndpoint(KubeModel):
    """Where the control plane's API server is reached."""

    host: str | None = Field(default=None, description="Host name or IP address.")
    port: int | None = Field(default=None, ge=0, le=65535, description="Port.")


class SecretRef(KubeModel):
    """A Secret in the object's namespace; the SSH private key is under its key `value`."""

    name: str = Field(description="Name of the Secret.")


class InitializationStatus(KubeModel):
    """What Cluster API waits for (contract field)."""

    provisioned: bool | None = Field(default=None, description="The infrastructure is ready.")


# --- RemoteCluster --------------------------------------------------------------------------


class RemoteClusterSpec(KubeModel):
    """Nothing to provision: the control plane is hosted and the machines exist."""

    control_plane_endpoint: APIEndpoint | None = Field(
        default=None,
        alias="controlPlaneEndpoint",
        description="The hosted control plane's address; set by the control plane provider.",
    )


class RemoteClusterStatus(KubeModel):
    initialization: InitializationStatus | None = Field(
        default=None, description="Provisioning milestones (contract field)."
    )
    conditions: list[Condition] | None = Field(default=None, description="Current conditions.")


class RemoteCluster(TopLevel):
    """The infrastructure of a Cluster whose control plane is hosted."""

    CRD: ClassVar[CRDInfo] = _crd("RemoteCluster", "remoteclusters")
    VERSION: ClassVar[VersionInfo] = VersionInfo(name="v1beta2", storage=True)

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta2"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta2", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["RemoteCluster"] = Field(default="RemoteCluster", description="Object kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: RemoteClusterSpec = Field(default_factory=RemoteClusterSpec, description="Spec.")
    status: RemoteClusterStatus | None = Field(default=None, description="Observed state.")


class RemoteClusterTemplateResource(KubeModel):
    spec: RemoteClusterSpec = Field(default_factory=RemoteClusterSpec, description="Spec.")


class RemoteClusterTemplateSpec(KubeModel):
    template: RemoteClusterTemplateResource = Field(
        default_factory=RemoteClusterTemplateResource, description="The template."
    )


class RemoteClusterTemplate(TopLevel):
    """A RemoteCluster for ClusterClass topologies."""

    CRD: ClassVar[CRDInfo] = _crd("RemoteClusterTemplate", "remoteclustertemplates", status=False)
    VERSION: ClassVar[VersionInfo] = VersionInfo(name="v1beta2", storage=True)

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta2"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta2", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["RemoteClusterTemplate"] = Field(
        default="RemoteClusterTemplate", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: RemoteClusterTemplateSpec = Field(
        default_factory=RemoteClusterTemplateSpec, description="The template."
    )


# --- RemoteMachine ---------------------------------------------------------------------------


class ConnectionSpec(KubeModel):
    """How to reach a machine over SSH and where to work on it."""

    address: str | None = Field(default=None, description="IP address or DNS name.")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port.")
    user: str = Field(default="root", description="SSH user.")
    use_sudo: bool | None = Field(
        default=None, alias="useSudo", description="Run the bootstrap through sudo."
    )
    commands_as_script: bool = Field(
        default=False,
        alias="commandsAsScript",
        description="Accepted for k0smotron manifests; the bootstrap is always uploaded into "
        "workingDir as a script and run detached from the connection.",
    )
    working_dir: str = Field(
        default=DEFAULT_WORKING_DIR,
        alias="workingDir",
        description="Directory on the machine for the bootstrap script, its output and status.",
    )
    clean_up_commands: list[str] | None = Field(
        default=None,
        alias="cleanUpCommands",
        description="Commands run when the Machine goes; the default leaves the cluster "
        "(mothership-node-leave).",
    )


class ProvisionJob(KubeModel):
    """The bootstrap run from a Job: for machines only pods can reach, or an SSH client and
    key that must stay out of the operator."""

    ssh_command: str = Field(
        default="ssh",
        alias="sshCommand",
        description="The ssh client command line (shell words, e.g. with -i and -o options); "
        "the port and user@address are appended.",
    )
    scp_command: str = Field(
        default="scp",
        alias="scpCommand",
        description="The scp client command line; the port, the script and its target are "
        "appended.",
    )
    job_spec_template: FreeForm | None = Field(
        default=None,
        alias="jobSpecTemplate",
        description="A batch/v1 JobTemplateSpec (metadata, spec) whose first container has "
        "ssh and scp and a shell; the operator mounts the bootstrap into it and runs it.",
    )


class RemoteMachineSpec(ConnectionSpec):
    """An existing machine, given directly or taken from a pool."""

    pool: str | None = Field(
        default=None,
        description="Take the connection from a free PooledRemoteMachine of this pool.",
    )
    provider_id: str | None = Field(
        default=None,
        alias="providerID",
        description="Set when provisioned: remote-machine://address:port.",
    )
    ssh_key_ref: SecretRef | None = Field(
        default=None,
        alias="sshKeyRef",
        description="Secret with the SSH private key under `value`.",
    )
    provision_job: ProvisionJob | None = Field(
        default=None,
        alias="provisionJob",
        description="Provision (and clean up) from a Job of this template instead of the "
        "operator's SSH client; sshKeyRef is then not needed (the Job mounts its key).",
    )


class MachineAddress(KubeModel):
    type: str = Field(description="InternalIP, ExternalIP, Hostname, ...")
    address: str = Field(description="The address.")


class RemoteMachineStatus(KubeModel):
    initialization: InitializationStatus | None = Field(
        default=None, description="Provisioning milestones (contract field)."
    )
    addresses: list[MachineAddress] | None = Field(default=None, description="Machine addresses.")
    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="metadata.generation seen."
    )
    conditions: list[Condition] | None = Field(default=None, description="Current conditions.")


class RemoteMachine(TopLevel):
    """An existing machine provisioned over SSH for a Cluster API Machine."""

    CRD: ClassVar[CRDInfo] = _crd(
        "RemoteMachine",
        "remotemachines",
        columns=(
            PrinterColumn("Address", ".spec.address", "string", "Address of the machine."),
            PrinterColumn("Provider ID", ".spec.providerID", "string", "Its provider ID."),
        ),
    )
    VERSION: ClassVar[VersionInfo] = VersionInfo(name="v1beta2", storage=True)

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta2"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta2", alias="apiVersion",
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
    """A RemoteMachine per Machine of a MachineDeployment (usually with a pool)."""

    CRD: ClassVar[CRDInfo] = _crd("RemoteMachineTemplate", "remotemachinetemplates", status=False)
    VERSION: ClassVar[VersionInfo] = VersionInfo(name="v1beta2", storage=True)

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta2"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta2", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["RemoteMachineTemplate"] = Field(
        default="RemoteMachineTemplate", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: RemoteMachineTemplateSpec = Field(
        default_factory=RemoteMachineTemplateSpec, description="The template."
    )


# --- PooledRemoteMachine ----------------------------------------------------------------------


class PooledMachineSpec(ConnectionSpec):
    """A pooled machine's connection; address and key are required here."""

    address: str = Field(description="IP address or DNS name.")
    ssh_key_ref: SecretRef = Field(
        alias="sshKeyRef", description="Secret with the SSH private key under `value`."
    )


class PooledRemoteMachineSpec(KubeModel):
    pool: str = Field(description="Name of the pool.")
    machine: PooledMachineSpec = Field(description="How to reach the machine.")


class RemoteMachineRef(KubeModel):
    name: str = Field(description="Name of the RemoteMachine.")
    namespace: str = Field(description="Its namespace.")


class PooledRemoteMachineStatus(KubeModel):
    reserved: bool | None = Field(default=None, description="Taken by a RemoteMachine.")
    machine_ref: RemoteMachineRef | None = Field(
        default=None, alias="machineRef", description="The RemoteMachine that holds it."
    )


class PooledRemoteMachine(TopLevel):
    """A machine waiting in a pool until a RemoteMachine reserves it."""

    CRD: ClassVar[CRDInfo] = _crd(
        "PooledRemoteMachine",
        "pooledremotemachines",
        columns=(
            PrinterColumn("Address", ".spec.machine.address", "string", "Address."),
            PrinterColumn("Reserved", ".status.reserved", "string", "Whether it is taken."),
            PrinterColumn("Remote Machine", ".status.machineRef.name", "string", "Holder."),
        ),
    )
    VERSION: ClassVar[VersionInfo] = VersionInfo(name="v1beta2", storage=True)

    api_version: Literal["infrastructure.cluster.x-k8s.io/v1beta2"] = Field(
        default="infrastructure.cluster.x-k8s.io/v1beta2", alias="apiVersion",
        description="API group and version.",
    )  # fmt: skip
    kind: Literal["PooledRemoteMachine"] = Field(
        default="PooledRemoteMachine", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: PooledRemoteMachineSpec = Field(description="Pool and connection.")
    status: PooledRemoteMachineStatus | None = Field(default=None, description="Reservation.")
