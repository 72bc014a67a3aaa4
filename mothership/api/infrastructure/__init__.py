"""The infrastructure.cluster.x-k8s.io API group: k0smotron's provider for existing machines.

RemoteMachines are servers that exist already and are reached over SSH; PooledRemoteMachines
are such servers waiting in a named pool for a RemoteMachine (of a MachineDeployment) to
reserve them; a RemoteCluster is the infrastructure of a Cluster whose control plane is
hosted. v1beta2 is the storage version (Cluster API contract v1beta2); v1beta1, the version
k0smotron's documentation writes, is still served.
"""

from mothership.api.infrastructure import v1beta1, v1beta2
from mothership.api.infrastructure.convert import convert

__all__ = ["convert", "v1beta1", "v1beta2"]
