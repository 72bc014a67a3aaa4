"""What rendering needs beyond the Cluster spec, and how spec and facts combine.

Rendering is a pure function so the controller can hash its output and skip unchanged
writes. Anything the controller learns from the world (a load balancer address, the
version a running cluster was created with) therefore has to come in as an explicit,
immutable value: reading it from the spec would mean writing it into the user's object,
which k0smotron does and which makes `kubectl apply` of the original manifest fight the
operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mothership.api.k0smotron.v1beta2 import (
    DEFAULT_K0S_IMAGE,
    DEFAULT_K0S_VERSION,
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_PROMETHEUS_IMAGE,
    DEFAULT_PROXY_IMAGE,
    Cluster,
    ClusterSpec,
)
from mothership.render import names

# DEFAULT_K0S_VERSION (the webhook's default too) is what a Cluster without spec.version
# runs when nothing is recorded; a running cluster keeps the version the controller recorded
# (Facts.k0s_version_default), so moving the constant never upgrades a running cluster.
_CORE_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")
# An image repository: optional registry host[:port], then path parts; no tag, no digest.
IMAGE_REPOSITORY_PATTERN = r"^[^\s:@/]+(:[0-9]+)?(/[^\s:@/]+)*$"


@dataclass(frozen=True)
class Facts:
    """Observed or recorded values the spec does not carry.

    - external_address: the address workers and kubeconfigs use when the spec has none;
      detected by the controller (load balancer ingress, node address) and recorded in
      status, so a restart renders the same objects without re-detecting.
    - k0s_version_default: the version to run when spec.version is empty; the controller
      records the version a cluster was first rendered with so an operator upgrade that
      moves DEFAULT_K0S_VERSION does not roll every unversioned cluster.
    - service_cluster_ips: the control plane Service's cluster IPs, added to the API
      server certificate SANs as k0smotron does so in-cluster clients may dial the IP.
    - etcd_replicas: the etcd member count the controller decided on. etcd must grow one
      member at a time and never shrink below what exists; that needs observed state, so
      the decision is the controller's and rendering only carries it out.
      None: the count the spec asks for (see etcd.desired_replicas).
    - etcd_initial_cluster: the founding etcd members the existing etcd StatefulSet was
      written with (its mothership.io/etcd-initial-cluster annotation), kept so that growing
      etcd never changes the pod template. None: the members rendered now.
    - etcd_dns_check_image: the image the existing etcd StatefulSet runs its DNS check
      with. Reusing it keeps a k0s upgrade from rolling every etcd member just because
      the helper image changed. None: the cluster's k0s image.
    - kubernetes_version_default: what k0s_version_default is for the kubernetes
      distribution (a Kubernetes version, e.g. v1.35.4).
    - kubernetes_image_template: an operator setting, not an observation: the image that
      runs every control plane component of the kubernetes distribution when the spec
      names none, with ``{version}`` standing for the Cluster's version (e.g.
      ``localhost/mothership/control-plane:{version}``). Such an image holds every
      binary on PATH under its upstream name. None: the upstream images.
    - default_etcd_image: an operator setting too: the etcd image of a Cluster whose
      spec names none (the admission webhook normally fills the spec in, so this only
      serves objects stored without it). None: DEFAULT_ETCD_IMAGE.
    - monitoring_prometheus_image, monitoring_proxy_image: operator settings: the images
      of the monitoring sidecars of Clusters that keep the API's defaults
      (DEFAULT_PROMETHEUS_IMAGE, DEFAULT_PROXY_IMAGE), for a mothership that cannot pull
      those. None: the defaults.
    - datastore_tls: the Cluster's SQL DataStore has TLS (its tenant Secret says so and
      holds the CA): kine gets the CA file mounted and named.
    - datastore_revision: the revision of the tenant Secret of a Cluster on a shared
      DataStore (the Secret's annotation, new at each write): on the pod template, so a
      renewed certificate or rewritten credentials roll the control plane.
    - encryption_revision: the digest of the key Secret's EncryptionConfiguration (its
      annotation; none on a Secret made before rotations existed): on the pod template,
      so each step of a key rotation rolls the control plane.
    """

    external_address: str | None = None
    k0s_version_default: str = DEFAULT_K0S_VERSION
    service_cluster_ips: tuple[str, ...] = ()
    etcd_replicas: int | None = None
    etcd_dns_check_image: str | None = None
    etcd_initial_cluster: str | None = None
    kubernetes_version_default: str = DEFAULT_KUBERNETES_VERSION
    kubernetes_image_template: str | None = None
    default_etcd_image: str | None = None
    k0s_image_repository: str | None = None
    monitoring_prometheus_image: str | None = None
    monitoring_proxy_image: str | None = None
    datastore_tls: bool = False
    datastore_revision: str | None = None
    encryption_revision: str | None = None


def k0s_version(spec: ClusterSpec, facts: Facts) -> str:
    """The version as the user wrote it (or the recorded default), before tag mangling."""
    return spec.version or facts.k0s_version_default


def kubernetes_version(spec: ClusterSpec, facts: Facts) -> str:
    """The Kubernetes version the kubernetes distribution runs (spec, else recorded default)."""
    return spec.version or facts.kubernetes_version_default


def k0s_image(spec: ClusterSpec, facts: Facts) -> str:
    """`<repository>:<tag>`, the tag derived from the version (see v1beta2.k0s_image_tag)."""
    ref = spec.image_ref(facts.k0s_version_default)
    mirror = facts.k0s_image_repository
    if mirror and ref.startswith(DEFAULT_K0S_IMAGE + ":"):
        return mirror + ref[len(DEFAULT_K0S_IMAGE) :]
    return ref


def monitoring_images(spec: ClusterSpec, facts: Facts) -> tuple[str, str]:
    """(Prometheus, proxy) of the monitoring sidecars. An image the user chose is kept; one
    that is the API's default is replaced by the operator's setting, as k0s_image does, so
    the stored spec never changes."""
    monitoring = spec.monitoring
    prometheus, proxy = monitoring.prometheus_image, monitoring.proxy_image
    if prometheus == DEFAULT_PROMETHEUS_IMAGE and facts.monitoring_prometheus_image:
        prometheus = facts.monitoring_prometheus_image
    if proxy == DEFAULT_PROXY_IMAGE and facts.monitoring_proxy_image:
        proxy = facts.monitoring_proxy_image
    return prometheus, proxy


def core_version(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a k0s version, or None when it does not parse."""
    match = _CORE_VERSION.match(version.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def external_address(spec: ClusterSpec, facts: Facts) -> str | None:
    """The user's address wins; a detected one fills in only when the user gave none."""
    return spec.external_address or facts.external_address or None


class RenderError(ValueError):
    """The spec asks for something that cannot be turned into objects (e.g. pvc without a claim).

    Validation should have caught it; raising here keeps a half-rendered cluster from being
    applied when it did not.
    """


def identity(cluster: Cluster) -> tuple[str, str]:
    """(name, namespace) of the Cluster; every rendered object lives next to it."""
    name = cluster.metadata.get("name")
    if not name:
        raise RenderError("the Cluster has no metadata.name")
    return name, cluster.metadata.get("namespace") or "default"


def object_meta(
    cluster: Cluster,
    name: str,
    component: str,
    *,
    annotations: dict[str, str] | None = None,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """metadata for a rendered object: our labels always win over user-supplied ones.

    The controller finds and garbage-collects its objects by these labels, so a user label
    must not be able to rename the component or the cluster an object belongs to.
    """
    cluster_name, namespace = identity(cluster)
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**(extra_labels or {}), **names.labels(cluster_name, component)},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
