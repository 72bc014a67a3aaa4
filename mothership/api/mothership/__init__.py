"""The mothership.io API group: kinds of mothership's own, with no k0smotron counterpart.

v1alpha1 is the only version (nothing to convert): a DataStore is a database server shared
by many Clusters, each of which gets a database and a user of its own on it.
"""

from mothership.api.mothership import v1alpha1

__all__ = ["v1alpha1"]
