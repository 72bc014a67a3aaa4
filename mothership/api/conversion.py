"""One entry point for the conversion webhook: an object of any served group, to a version.

Each API group converts its own kinds (``<group package>.convert``); this only picks the
group from the object's apiVersion, so the webhook serves every CRD with one endpoint.
"""

from __future__ import annotations

from typing import Any

from mothership.api import bootstrap, controlplane, infrastructure, k0smotron
from mothership.api.bootstrap.v1beta2 import GROUP as BOOTSTRAP_GROUP
from mothership.api.controlplane.v1beta2 import GROUP as CONTROLPLANE_GROUP
from mothership.api.infrastructure.v1beta2 import GROUP as INFRASTRUCTURE_GROUP
from mothership.api.k0smotron.v1beta2 import GROUP as K0SMOTRON_GROUP

Obj = dict[str, Any]

_BY_GROUP = {
    K0SMOTRON_GROUP: k0smotron.convert,
    CONTROLPLANE_GROUP: controlplane.convert,
    BOOTSTRAP_GROUP: bootstrap.convert,
    INFRASTRUCTURE_GROUP: infrastructure.convert,
}


def convert(obj: Obj, to_version: str) -> Obj:
    """``obj`` as ``to_version``; ValueError for a group, version or kind not served here."""
    api_version = obj.get("apiVersion")
    group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
    if group not in _BY_GROUP:
        raise ValueError(f"cannot convert from unknown apiVersion {api_version!r}")
    return _BY_GROUP[group](obj, to_version)
