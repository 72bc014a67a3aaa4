"""Looking at a tenant's nodes from tests that join real machines to it."""

from __future__ import annotations

from lightkube import Client
from lightkube.resources.core_v1 import Node


def node_ready(client: Client, name: str) -> bool:
    """Whether the tenant has this Node and it is Ready (False while it does not exist)."""
    try:
        node = client.get(Node, name)
    except Exception:  # not registered yet, or the API is briefly unreachable
        return False
    conds = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conds)
