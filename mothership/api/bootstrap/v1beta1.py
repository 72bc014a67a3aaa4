"""bootstrap.cluster.x-k8s.io/v1beta1: the version of Cluster API's v1beta1 contract.

Still served (deprecated); stored as v1beta2 and translated by :mod:`.convert`. The v1beta1
layout keeps ignition and customUserDataRef at the top of the spec and names the command
lists preStartCommands and postStartCommands; its status says `ready`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from mothership.api.base import CRDInfo, KubeModel, TopLevel, VersionInfo
from mothership.api.bootstrap.v1beta2 import (
    DEFAULT_INSTALL_DIR,
    GROUP,
    PRINTER_COLUMNS,
    TEMPLATE_CRD,
    WORKER_CONFIG_CRD,
    ContentSource,
    File,
    IgnitionSpec,
    TemplateMeta,
)
from mothership.api.k0smotron.v1beta2 import Condition, SecretMetadata

API_VERSION = f"{GROUP}/v1beta1"
DEPRECATION = f"{API_VERSION} is deprecated; use {GROUP}/v1beta2 (Cluster API contract v1beta2)"


class K0sWorkerConfigSpec(KubeModel):
    """How a Machine joins its Cluster as a worker (v1beta1 layout)."""

    ignition: IgnitionSpec | None = Field(default=None, description="Ignition settings.")
    k0s_install_dir: str = Field(
        default=DEFAULT_INSTALL_DIR, alias="k0sInstallDir", description="Where binaries go."
    )
    version: str | None = Field(default=None, description="Version of the node components.")
    use_system_hostname: bool = Field(
        default=False, alias="useSystemHostname", description="Node named after the host name."
    )
    files: list[File] | None = Field(default=None, description="Extra files to write.")
    args: list[str] | None = Field(default=None, description="k0s worker flags.")
    pre_start_commands: list[str] | None = Field(
        default=None, alias="preStartCommands", description="Commands run before the join."
    )
    post_start_commands: list[str] | None = Field(
        default=None, alias="postStartCommands", description="Commands run after the join."
    )
    pre_installed_k0s: bool = Field(
        default=False, alias="preInstalledK0s", description="Download nothing."
    )
    download_url: str | None = Field(
        default=None, alias="downloadURL", description="A mirror of the release locations."
    )
    custom_user_data_ref: ContentSource | None = Field(
        default=None, alias="customUserDataRef", description="Extra cloud-config appended."
    )
    secret_metadata: SecretMetadata | None = Field(
        default=None, alias="secretMetadata", description="Metadata for the data Secret."
    )
    working_dir: str | None = Field(
        default=None, alias="workingDir", description="Where the join script is written."
    )


class K0sWorkerConfigStatus(KubeModel):
    """Observed state, in the shape of Cluster API's v1beta1 bootstrap contract."""

    ready: bool | None = Field(default=None, description="The bootstrap data Secret exists.")
    data_secret_name: str | None = Field(
        default=None, alias="dataSecretName", description="Secret holding the bootstrap data."
    )
    conditions: list[Condition] | None = Field(default=None, description="Current conditions.")


class K0sWorkerConfig(TopLevel):
    """Bootstrap data for one worker Machine (deprecated version)."""

    CRD: ClassVar[CRDInfo] = WORKER_CONFIG_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta1",
        storage=False,
        deprecated=True,
        deprecation_warning=DEPRECATION,
        extra_printer_columns=PRINTER_COLUMNS,
    )

    api_version: Literal["bootstrap.cluster.x-k8s.io/v1beta1"] = Field(
        default="bootstrap.cluster.x-k8s.io/v1beta1",
        alias="apiVersion",
        description="API group and version.",
    )
    kind: Literal["K0sWorkerConfig"] = Field(default="K0sWorkerConfig", description="Object kind.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: K0sWorkerConfigSpec = Field(
        default_factory=K0sWorkerConfigSpec, description="How the Machine joins."
    )
    status: K0sWorkerConfigStatus | None = Field(default=None, description="Observed state.")


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
    """A K0sWorkerConfig for every Machine of a MachineDeployment (deprecated version)."""

    CRD: ClassVar[CRDInfo] = TEMPLATE_CRD
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1beta1", storage=False, deprecated=True, deprecation_warning=DEPRECATION
    )

    api_version: Literal["bootstrap.cluster.x-k8s.io/v1beta1"] = Field(
        default="bootstrap.cluster.x-k8s.io/v1beta1",
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
