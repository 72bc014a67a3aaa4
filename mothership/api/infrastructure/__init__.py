"""The infrastructure.cluster.x-k8s.io API group: k0smotron's provider for existing machines.

RemoteMachines are servers that exist already and are reached over SSH; PooledRemoteMachines
are such servers waiting in a named pool for a RemoteMachine (of a MachineDeployment) to
reserve them; a RemoteCluster is the infrastructure of a Cluster whose control plane is
hosted. Only v1beta2 (Cluster API contract v1beta2) is served so far.
"""

from mothership.api.infrastructure import v1beta2

__all__ = ["v1beta2"]
