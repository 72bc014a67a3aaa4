"""bootstrap.cluster.x-k8s.io/v1beta2: K0sWorkerConfig and its template.

Kinds, field names, enums and defaults follow k0smotron so its Cluster API manifests apply
unchanged; descriptions are ours and say where mothership reads a field its own way.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from mothership.api.base import CRDInfo, KubeModel, PrinterColumn, TopLevel, VersionInfo
from mothership.api.k0smotron.v1beta2 import Condition, SecretMetadata

GROUP = "bootstrap.cluster.x-k8s.io"
API_VERSION = f"{GROUP}/v1beta2"
DEFAULT_INSTALL_DIR = "/usr/local/bin"
SUCCESS_SENTINEL = "/run/cluster-api/bootstrap-success.complete"
"""Written last by the bootstrap data: Cluster API's sign that bootstrapping succeeded."""

PROVIDER_LABELS = (
    ("cluster.x-k8s.io/v1beta1", "v1beta1"),
    ("cluster.x-k8s.io/v1beta2", "v1beta2"),
    ("cluster.x-k8s.io/provider", "bootstrap-k0smotron"),
)
CONDITION_DATA_SECRET = "DataSecretAvailable"

WORKER_CONFIG_CRD = CRDInfo(
    group=GROUP,
    kind="K0sWorkerConfig",
    plural="k0sworkerconfigs",
    singular="k0sworkerconfig",
    categories=("cluster-api",),
    labels=PROVIDER_LABELS,
)
TEMPLATE_CRD = CRDInfo(
    group=GROUP,
    kind="K0sWorkerConfigTemplate",
    plural="k0sworkerconfigtemplates",
    singular="k0sworkerconfigtemplate",
    categories=("cluster-api",),
    status_subresource=False,
    labels=PROVIDER_LABELS,
)

ProvisioningFormat = Literal["cloud-config", "ignition", "powershell", "powershell-xml"]
Platform = Literal["linux", "windows"]


class ContentSourceRef(KubeModel):
    """One key of a Secret or ConfigMap in the config's namespace."""

    name: str = Field(description="Name of the Secret or ConfigMap.")
    key: str = Field(description="Key whose value is the content.")


class ContentSource(KubeModel):
    """Where content comes from instead of being inline."""

    secret_ref: ContentSourceRef | None = Field(
        default=None, alias="secretRef", description="A key of a Secret."
    )
    config_map_ref: ContentSourceRef | None = Field(
        default=None, alias="configMapRef", description="A key of a ConfigMap."
    )


class File(KubeModel):
    """A file written on the machine before anything else runs."""

    path: str | None = Field(default=None, description="Absolute path on the machine.")
    content: str | None = Field(default=None, description="Content, inline.")
    permissions: str | None = Field(default=None, description="Octal mode, e.g. 0644.")
    content_from: ContentSource | None = Field(
        default=None, alias="contentFrom", description="Content from a Secret or ConfigMap."
    )


class IgnitionSpec(KubeModel):
    """Ignition output (type ignition): mothership writes Ignition spec 3.4.0 itself."""

    variant: str | None = Field(
        default=None, description="Butane variant, e.g. fcos (kept; the output is Ignition)."
    )
    version: str | None = Field(default=None, description="Butane variant version (kept).")
    additional_config: str | None = Field(
        default=None,
        alias="additionalConfig",
        description="An Ignition config (JSON, spec 3.x) merged in by Ignition; Butane is "
        "refused: translate it with butane first.",
    )


class ProvisionerSpec(KubeModel):
    """The format of the bootstrap data."""

    type: ProvisioningFormat = Field(
        default="cloud-config",
        description="Bootstrap data format; mothership writes cloud-config and ignition (the "
        "others are refused with a condition).",
    )
    platform: Platform = Field(default="linux", description="Operating system of the machine.")
    ignition: IgnitionSpec | None = Field(default=None, description="Ignition settings.")
    custom_user_data_ref: ContentSource | None = Field(
        default=None,
        alias="customUserDataRef",
        description="Extra cloud-config appended after the generated one.",
    )


class K0sWorkerConfigSpec(KubeModel):
    """How a Machine joins its Cluster as a worker."""

    provisioner: ProvisionerSpec = Field(
        default_factory=ProvisionerSpec, description="Bootstrap data format."
    )
    k0s_install_dir: str = Field(
        default=DEFAULT_INSTALL_DIR,
        alias="k0sInstallDir",
        description="Where binaries are installed (the join installs into /usr/local/bin).",
    )
    version: str | None = Field(
        default=None,
        description="Version of the node components; the control plane's when empty.",
    )
    use_system_hostname: bool = Field(
        default=False,
        alias="useSystemHostname",
        description="Name the Node after the machine's host name instead of the Machine.",
    )
    files: list[File] | None = Field(default=None, description="Extra files to write.")
    args: list[str] | None = Field(
        default=None,
        description="k0s worker flags: --labels, --taints, --kubelet-extra-args (the "
        "kubernetes distribution reads these three).",
    )
    pre_k0s_commands: list[str] | None = Field(
        default=None, alias="preK0sCommands", description="Commands run before the join."
    )
    post_k0s_commands: list[str] | None = Field(
        default=None, alias="postK0sCommands", description="Commands run after the join."
    )
    pre_installed_k0s: bool = Field(
        default=False,
        alias="preInstalledK0s",
        description="The node components are installed already: download nothing.",
    )
    download_url: str | None = Field(
        default=None,
        alias="downloadURL",
        description="A mirror laid out like the upstream release locations.",
    )
    secret_metadata: SecretMetadata | None = Field(
        default=None,
        alias="secretMetadata",
        description="Labels and annotations for the bootstrap data Secret.",
    )
    working_dir: str | None = Field(
        default=None,
        alias="workingDir",
        description="Where the join script is written (/var/lib/mothership-node when empty).",
    )


class Initialization(KubeModel):
    """What Cluster API waits for before it provisions the machine."""

    data_secret_created: bool | None = Field(
        default=None, alias="dataSecretCreated", description="The bootstrap data Secret exists."
    )


class K0sWorkerConfigStatus(KubeModel):
    """Observed state, in the shape of Cluster API's v1beta2 bootstrap contract."""

    data_secret_name: str | None = Field(
        default=None, alias="dataSecretName", description="Secret holding the bootstrap data."
    )
    initialization: Initialization | None = Field(
        default=None, description="Provisioning milestones (contract field)."
    )
    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="metadata.generation seen."
    )
    conditions: list[Condition] | None = Field(default=None, description="Current conditions.")


PRINTER_COLUMNS = (
    PrinterColumn(
        "Cluster",
        ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']",
        "string",
        "The Cluster API Cluster of the Machine.",
    ),
    PrinterColumn(
        "Data Secret", ".status.dataSecretName", "string", "Secret with the bootstrap data."
    ),
    PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
)


class K0sWorkerConfig(TopLevel):
    """Bootstrap data for one worker Machine (storage version)."""

    CRD: ClassVar[CRDInfo] = WORKER_CONFIG_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta2", storage=True, extra_printer_columns=PRINTER_COLUMNS
    )

    api_version: Literal["bootstrap.cluster.x-k8s.io/v1beta2"] = Field(
        default="bootstrap.cluster.x-k8s.io/v1beta2",
        alias="apiVersion",
        description="API group and version.",
    )
    kind: Literal["K0sWorkerConfig"] = Field(default="K0sWorkerConfig", description="Object kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: K0sWorkerConfigSpec = Field(
        default_factory=K0sWorkerConfigSpec, description="How the Machine joins."
    )
    status: K0sWorkerConfigStatus | None = Field(default=None, description="Observed state.")


class TemplateMeta(KubeModel):
    """Labels and annotations given to configs made from the template."""

    labels: dict[str, str] | None = Field(default=None, description="Labels to add.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations to add.")


class K0sWorkerConfigTemplateResource(KubeModel):
    """The config a MachineDeployment stamps out per Machine."""

    metadata: TemplateMeta | None = Field(default=None, description="Metadata for the copies.")
    spec: K0sWorkerConfigSpec = Field(
        default_factory=K0sWorkerConfigSpec, description="The spec each config gets."
    )


class K0sWorkerConfigTemplateSpec(KubeModel):
    """Holds the template."""

    template: K0sWorkerConfigTemplateResource = Field(
        default_factory=K0sWorkerConfigTemplateResource, description="The template."
    )


class K0sWorkerConfigTemplate(TopLevel):
    """A K0sWorkerConfig for every Machine of a MachineDeployment (storage version)."""

    CRD: ClassVar[CRDInfo] = TEMPLATE_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(name="v1beta2", storage=True)

    api_version: Literal["bootstrap.cluster.x-k8s.io/v1beta2"] = Field(
        default="bootstrap.cluster.x-k8s.io/v1beta2",
        alias="apiVersion",
        description="API group and version.",
    )
    kind: Literal["K0sWorkerConfigTemplate"] = Field(
        default="K0sWorkerConfigTemplate", description="Object kind."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: K0sWorkerConfigTemplateSpec = Field(
        default_factory=K0sWorkerConfigTemplateSpec, description="The template."
    )
