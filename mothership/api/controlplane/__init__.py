"""The controlplane.cluster.x-k8s.io API group: k0smotron's Cluster API control plane.

A K0smotronControlPlane is a k0smotron.io Cluster spec that Cluster API points at from a
`Cluster`'s `controlPlaneRef`; the operator turns it into a k0smotron.io Cluster and reports
back in Cluster API's control-plane contract. v1beta2 is the storage version (contract
v1beta2); v1beta1 is still served for manifests written against the older contract.
"""

from mothership.api.controlplane import v1beta1, v1beta2
from mothership.api.controlplane.convert import convert

__all__ = ["convert", "v1beta1", "v1beta2"]
