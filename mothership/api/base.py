"""Shared base for API models and the CRD facts that are not part of any schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class KubeModel(BaseModel):
    """Base of every spec/status model.

    Fields are snake_case in Python and carry their exact JSON name as alias; objects
    read from the API server may hold fields a newer version added, so extras are
    ignored rather than rejected (the API server prunes unknown fields itself).
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore", serialize_by_alias=True)

    def to_api(self) -> dict[str, Any]:
        """JSON-ready dict with API field names, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class CRDInfo:
    """What a CRD needs beyond the schema of one version."""

    group: str
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    scope: str = "Namespaced"
    status_subresource: bool = True
    # JSON paths for the scale subresource, e.g. (".spec.replicas", ".status.replicas",
    # ".status.selector"); None means no scale subresource.
    scale: tuple[str, str, str] | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    # Labels on the CRD object itself: Cluster API finds a provider's contract version
    # ("cluster.x-k8s.io/v1beta2": "v1beta2") and its provider name there.
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VersionInfo:
    """One served version of a kind: its top-level model and how it is served."""

    name: str
    storage: bool
    deprecated: bool = False
    deprecation_warning: str = ""
    extra_printer_columns: tuple[PrinterColumn, ...] = field(default=())


class TopLevel(KubeModel):
    """A whole object (apiVersion/kind/metadata/spec/status) of one version of a kind."""

    CRD: ClassVar[CRDInfo]
    VERSION: ClassVar[VersionInfo]
