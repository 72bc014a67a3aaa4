"""The k0smotron.io API group, served so that k0smotron manifests apply unchanged.

v1beta2 is the storage version; v1beta1 is still served (deprecated) and translated by the
conversion webhook through :func:`convert.convert`.
"""

from mothership.api.k0smotron import v1beta1, v1beta2
from mothership.api.k0smotron.convert import convert

__all__ = ["convert", "v1beta1", "v1beta2"]
