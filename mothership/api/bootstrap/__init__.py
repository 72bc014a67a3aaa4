"""The bootstrap.cluster.x-k8s.io API group: k0smotron's Cluster API bootstrap provider.

A K0sWorkerConfig turns a Cluster API Machine into bootstrap data (cloud-init) that joins
the machine to its Cluster's hosted control plane as a worker. v1beta2 is the storage
version (Cluster API contract v1beta2); v1beta1 is still served.
"""

from mothership.api.bootstrap import v1beta1, v1beta2
from mothership.api.bootstrap.convert import convert

__all__ = ["convert", "v1beta1", "v1beta2"]
