"""`-o table|yaml|json`: tables for people, whole objects for scripts (as kubectl prints them)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import typer
import yaml


class Output(StrEnum):
    table = "table"
    yaml = "yaml"
    json = "json"


OutputOpt = typer.Option(
    Output.table,
    "-o",
    "--output",
    help="table (for people), yaml or json (whole objects, for scripts).",
)


def dump(data: Any, fmt: Output) -> None:
    """Print data as JSON or YAML on stdout (nothing else goes to stdout then).

    managedFields are left out, as kubectl leaves them out: noise for nearly every reader.
    """
    data = _without_managed_fields(data)
    if fmt == Output.json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    sys.stdout.flush()


def _without_managed_fields(data: Any) -> Any:
    if isinstance(data, dict):
        if data.get("kind") == "List" and isinstance(data.get("items"), list):
            return {**data, "items": [_without_managed_fields(i) for i in data["items"]]}
        meta = data.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            return {**data, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return data


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Several objects the way `kubectl get -o json` prints them."""
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: Any, now: datetime | None = None) -> str:
    """kubectl's short age: 45s, 12m, 3h, 5d (and '-' when unknown)."""
    then = parse_time(value)
    if then is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
