"""JSON-schema markers for values whose shape the API server must not police.

Pydantic would describe a free-form ``dict`` as ``additionalProperties: true``, which is not
a structural schema, and an ``int | str`` union as a ``anyOf`` of two types, which the API
server rejects without the int-or-string extension. These markers replace the generated
schema with the Kubernetes spelling, so the CRD generator can copy them verbatim.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import WithJsonSchema

PreserveUnknown = WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
"""Object kept as given: core Kubernetes types we pass through and free-form configuration."""

IntOrString = WithJsonSchema(
    {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
)
"""Value Kubernetes accepts as a number or a string (resource quantities, named ports)."""

FreeForm = Annotated[dict[str, Any], PreserveUnknown]
"""A JSON object the API server stores without pruning."""

Quantity = Annotated[int | str, IntOrString]
"""A Kubernetes resource quantity such as ``1Gi`` or ``500``."""


def preserve_unknown_object(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` hook for models that accept extra keys (``extra="allow"``).

    Such models keep their declared properties typed, yet must also keep the keys they do not
    declare (an inlined Kubernetes type, for instance). Structural schemas forbid mixing
    ``properties`` with ``additionalProperties``, so the hook swaps the latter for the
    preserve-unknown-fields extension.
    """
    schema.pop("additionalProperties", None)
    schema["x-kubernetes-preserve-unknown-fields"] = True
