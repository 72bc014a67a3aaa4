"""The control plane StatefulSet `kmc-N`: k0s controllers, one pod per replica.

A StatefulSet rather than a Deployment because each controller keeps its data directory
(emptyDir, hostPath or its own claim) and a stable name. The PKI comes from Secrets but is
copied into the data directory first: k0s writes next to the CA files and refuses
read-only or group-readable keys, which is what a Secret mount gives.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from mothership.api.k0smotron.v1beta2 import (
    KINE_DATASOURCE_SECRET_KEY,
    Cluster,
    ClusterSpec,
    Mount,
)
from mothership.api.mothership.v1alpha1 import (
    ETCD_CLIENT_CERT_KEY,
    ETCD_CLIENT_KEY_KEY,
    ETCD_ENDPOINTS_KEY,
    ETCD_PREFIX_KEY,
    TENANT_CA_DIR,
    TLS_CA_CERT_KEY,
)
from mothership.render import configmaps, encryption, ingress, names, scheduling
from mothership.render.facts import (
    Facts,
    RenderError,
    identity,
    k0s_image,
    monitoring_images,
    object_meta,
)

DATASTORE_TEMPLATE_ANNOTATION = "mothership.io/datastore"
"""On the pod template of a control plane on a shared DataStore: that DataStore's name."""
DATASTORE_REVISION_TEMPLATE_ANNOTATION = "mothership.io/datastore-revision"
"""On the pod template of a control plane on a shared DataStore: the revision of its tenant
Secret. A rewrite (renewed certificate, changed DataStore, a move) changes it and the pods
roll onto the new credentials, which they read only at start."""
COMPONENT = "control-plane"
DATA_DIR = "/var/lib/k0s"
MANIFESTS_DIR = f"{DATA_DIR}/manifests"
CERTS_VOLUME = "certs"
CERTS_INIT_DIR = "/certs-init"
NATS_VOLUME = "nats-data"
# Owner read/write/execute, others read: the script must be executable, nothing in it is secret.
ENTRYPOINT_MODE = 0o744
KINE_SECRET_ENV = "K0SMOTRON_KINE_DATASOURCE_URL"
# The uid and gid a restricted control plane pod runs as: distroless's `nonroot` (the
# base the upstream component images ship on knows it by that name) and the operator's
# own. A fixed number rather than each image's USER: the kubelet can check runAsNonRoot
# only against a numeric user, and one id for every container lets them share the Unix
# socket and the data directory without any mode tricks.
NON_ROOT_ID = 65532
# Writable scratch for the monitoring sidecars of a non-root pod: their images keep
# Prometheus' TSDB and nginx' temp files in root-owned directories.
MONITORING_TSDB_VOLUME = "monitoring-tsdb"
MONITORING_TSDB_DIR = "/prometheus/data"
MONITORING_PROXY_TEMP_VOLUME = "monitoring-proxy-temp"
# nginx creates its temp directories where it was compiled to: /var/cache/nginx in the
# nginx.org images, /var/lib/nginx in Debian's package. One emptyDir mounted at both
# serves either (the subdirectories they create have different names).
NGINX_TEMP_DIRS = ("/var/cache/nginx", "/var/lib/nginx")

# Files each certificate reference becomes in /var/lib/k0s/pki, named as k0s expects them.
# etcd-server and etcd-peer belong to the etcd pods, not to k0s.
CERT_FILES: dict[str, tuple[str, str]] = {
    "ca": ("ca.crt", "ca.key"),
    "sa": ("sa.pub", "sa.key"),
    "proxy": ("front-proxy-ca.crt", "front-proxy-ca.key"),
    "etcd": ("etcd-ca.crt", "etcd-ca.key"),
    "apiserver-etcd-client": ("apiserver-etcd-client.crt", "apiserver-etcd-client.key"),
}
DEFAULT_CERT_TYPES = ("ca", "proxy", "sa", "etcd")

# The certs-init command: k0s regenerates the API server certificate (server.*) on start,
# so a stale one from before a SAN change must not survive in a persistent data dir.
_CERTS_INIT = (
    f"set -e; mkdir -p {DATA_DIR}/pki; rm -f {DATA_DIR}/pki/server.*; "
    f"cp {CERTS_INIT_DIR}/* {DATA_DIR}/pki/"
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def mount_volume_name(path: str) -> str:
    """A volume name for a mount path.

    Paths that make a valid name by turning slashes into dashes keep that readable name
    (what k0smotron produced, so patches written for it still find the volume). Others
    are cleaned up and suffixed with a hash of the path, so two paths that clean up alike
    still get different volumes.
    """
    trimmed = path.lstrip("/")
    simple = trimmed.replace("/", "-")
    if len(simple) <= 63 and _DNS_LABEL.match(simple):
        return simple
    digest = hashlib.sha256(path.encode()).hexdigest()[:5]
    base = re.sub(r"[^a-z0-9-]+", "-", trimmed.lower()).strip("-")[:57].rstrip("-")
    return f"{base}-{digest}" if base else digest


def certificate_refs(cluster: Cluster) -> list[tuple[str, str]]:
    """(type, Secret name) of every certificate the controller pods need.

    Without refs in the spec, the operator's generated Secrets are used. Storage etcd
    always needs the etcd client certificate, which users rarely bring themselves.
    """
    cluster_name, _ = identity(cluster)
    spec = cluster.spec
    refs: list[tuple[str, str]]
    if spec.certificate_refs:
        refs = [
            (ref.type, ref.name or names.pki_secret(cluster_name, ref.type))
            for ref in spec.certificate_refs
        ]
    else:
        refs = [(kind, names.pki_secret(cluster_name, kind)) for kind in DEFAULT_CERT_TYPES]
    if spec.storage.managed_etcd and all(kind != "apiserver-etcd-client" for kind, _ in refs):
        refs.append(
            ("apiserver-etcd-client", names.pki_secret(cluster_name, "apiserver-etcd-client"))
        )
    return [(kind, secret) for kind, secret in refs if kind in CERT_FILES]


def _certs_volume(cluster: Cluster) -> dict[str, Any]:
    sources = []
    for kind, secret in certificate_refs(cluster):
        crt, key = CERT_FILES[kind]
        items = [{"key": "tls.crt", "path": crt}, {"key": "tls.key", "path": key}]
        sources.append({"secret": {"name": secret, "items": items}})
    return {"name": CERTS_VOLUME, "projected": {"sources": sources}}


def data_volume_name(cluster: Cluster) -> str:
    cluster_name, _ = identity(cluster)
    persistence = cluster.spec.persistence
    claim = persistence.persistent_volume_claim
    if persistence.type == "pvc" and claim and claim.metadata and claim.metadata.name:
        return claim.metadata.name
    return names.data_volume(cluster_name)


def data_volume(cluster: Cluster) -> dict[str, Any] | None:
    """The pod volume for /var/lib/k0s; None for pvc, where a claim template provides it."""
    persistence = cluster.spec.persistence
    name = data_volume_name(cluster)
    if persistence.type == "hostPath":
        if not persistence.host_path:
            raise RenderError("spec.persistence.hostPath is required when type is hostPath")
        return {"name": name, "hostPath": {"path": persistence.host_path}}
    if persistence.type == "pvc":
        return None
    return {"name": name, "emptyDir": {}}


def data_claim_template(cluster: Cluster) -> dict[str, Any] | None:
    persistence = cluster.spec.persistence
    if persistence.type != "pvc":
        return None
    claim = persistence.persistent_volume_claim
    if claim is None:
        raise RenderError("spec.persistence.persistentVolumeClaim is required when type is pvc")
    metadata: dict[str, Any] = {"name": data_volume_name(cluster)}
    if claim.metadata is not None:
        # A namespace on a claim template means nothing: claims live with the StatefulSet.
        for field in ("labels", "annotations", "finalizers"):
            value = getattr(claim.metadata, field)
            if value:
                metadata[field] = copy.deepcopy(value)
    return {"metadata": metadata, "spec": copy.deepcopy(claim.spec or {})}


def manifest_volumes(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    """Volumes k0s applies from /var/lib/k0s/manifests/<name>: the user's, then ours.

    Clusters migrated from k0smotron have our volumes written into spec.manifests (it
    stores them there); a name already present is not added twice. Only the old
    konnectivity bundle is dropped when k0s no longer needs it, as k0smotron does.
    """
    cluster_name, _ = identity(cluster)
    ours: list[dict[str, Any]] = []
    if configmaps.endpoint_config_map(cluster, facts) is not None:
        endpoint = names.endpoint_config_map(cluster_name)
        ours.append({"name": endpoint, "configMap": {"name": endpoint}})
    ours.extend(ingress.manifest_volumes(cluster, facts))
    wanted = {volume["name"] for volume in ours}
    user = [copy.deepcopy(v) for v in cluster.spec.manifests or []]
    for i, volume in enumerate(user):
        # The directory and the volume mount are named after the volume: no name, no stack.
        if not (isinstance(volume.get("name"), str) and volume["name"]):
            raise RenderError(
                f"spec.manifests[{i}].name: required; each manifests entry is a core/v1 "
                "Volume, and k0s applies it from /var/lib/k0s/manifests/<name>"
            )
    if cluster.spec.ingress is not None and ingress.KONNECTIVITY_VOLUME not in wanted:
        user = [v for v in user if v.get("name") != ingress.KONNECTIVITY_VOLUME]
    present = {v.get("name") for v in user}
    return user + [v for v in ours if v["name"] not in present]


def user_mount(mount: Mount) -> tuple[dict[str, Any], dict[str, Any]]:
    name = mount_volume_name(mount.path)
    source = {
        key: copy.deepcopy(value)
        for key, value in (mount.model_extra or {}).items()
        if key not in ("path", "readOnly")
    }
    # Secrets and ConfigMaps are read-only mounts anyway; saying so avoids a surprise.
    read_only = mount.read_only or "configMap" in source or "secret" in source
    volume_mount: dict[str, Any] = {"name": name, "mountPath": mount.path}
    if read_only:
        volume_mount["readOnly"] = True
    return {"name": name, **source}, volume_mount


def _probe(*, initial_delay: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "exec": {"command": ["k0s", "status"]},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def _probes(spec: ClusterSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(readiness, liveness). k0s needs about a minute to start its components; with
    embedded NATS every member must be ready quickly for the others to form a cluster."""
    if spec.storage.type == "nats":
        return (
            _probe(initial_delay=0, period=5, failures=15),
            _probe(initial_delay=0, period=5, failures=10),
        )
    return (
        _probe(initial_delay=60, period=10, failures=15),
        _probe(initial_delay=90, period=10, failures=10),
    )


def restricted_security(uid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) securityContext meeting the restricted Pod Security Standard.

    runAsGroup and fsGroup are the uid too: every volume the kubelet manages (emptyDir,
    claims, Secrets and ConfigMaps) then belongs to that group, group-writable where it is
    writable at all and group-readable whatever a Secret's defaultMode says, so a non-root
    process reads its certificates and writes its data without further ado.
    """
    pod = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return pod, container


def host_path_security() -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) securityContext of a pod with a hostPath volume: it stays root.

    The kubelet applies no fsGroup to a hostPath, so a non-root process could not write a
    directory the node created for root (kine's data dir), and a restricted or baseline
    namespace refuses hostPath volumes anyway. What root does not need still goes: new
    privileges and the syscalls outside the runtime's default seccomp profile.
    Capabilities stay, since root without CAP_DAC_OVERRIDE cannot write a node directory
    someone else owns.
    """
    return {"seccompProfile": {"type": "RuntimeDefault"}}, {"allowPrivilegeEscalation": False}


def uses_host_path(volumes: list[dict[str, Any]]) -> bool:
    """Whether a pod with these volumes must stay root (see host_path_security)."""
    return any("hostPath" in volume for volume in volumes)


def _monitoring_sidecars(
    cluster: Cluster, facts: Facts, credentials: list[dict[str, Any]], *, non_root: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(containers, volumes): Prometheus scraping the components over localhost, and nginx
    serving what it scraped on a port the management cluster's Prometheus scrapes.

    `credentials` are the mounts that put the client certificates the scrape config names
    under /var/lib/k0s/pki (k0s writes them into its data directory; the kubernetes
    distribution projects them from Secrets). A `non_root` pod gives both emptyDirs to
    write to: their images' own directories belong to root (or to another user)."""
    cluster_name, _ = identity(cluster)
    prometheus_image, proxy_image = monitoring_images(cluster.spec, facts)
    config = names.monitoring_config_map(cluster_name)
    nginx_volume = names.monitoring_nginx_volume(cluster_name)
    containers: list[dict[str, Any]] = [
        {
            "name": "monitoring-agent",
            "image": prometheus_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["prometheus", "--config.file=/prometheus/prometheus.yml"],
            # Federation only needs recent samples; cap the sidecar's disk use.
            "args": ["--storage.tsdb.retention.size=200MB"],
            "ports": [container_port("prometheus", configmaps.PROMETHEUS_PORT)],
            "volumeMounts": [
                *credentials,
                {
                    "name": config,
                    "mountPath": "/prometheus/prometheus.yml",
                    "subPath": "prometheus.yml",
                },
            ],
        },
        {
            "name": "monitoring-proxy",
            "image": proxy_image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [container_port("nginx", configmaps.METRICS_PROXY_PORT)],
            "volumeMounts": [
                {
                    "name": nginx_volume,
                    "mountPath": "/etc/nginx/nginx.conf",
                    "subPath": "nginx.conf",
                }
            ],
        },
    ]
    volumes = [
        {
            "name": config,
            "configMap": {
                "name": config,
                "items": [{"key": "prometheus.yml", "path": "prometheus.yml"}],
            },
        },
        {
            "name": nginx_volume,
            "configMap": {"name": config, "items": [{"key": "nginx.conf", "path": "nginx.conf"}]},
        },
    ]
    if non_root:
        agent, proxy = containers
        agent["args"].append(f"--storage.tsdb.path={MONITORING_TSDB_DIR}")
        agent["volumeMounts"].append(
            {"name": MONITORING_TSDB_VOLUME, "mountPath": MONITORING_TSDB_DIR}
        )
        proxy["volumeMounts"].extend(
            {"name": MONITORING_PROXY_TEMP_VOLUME, "mountPath": path} for path in NGINX_TEMP_DIRS
        )
        volumes += [
            {"name": MONITORING_TSDB_VOLUME, "emptyDir": {}},
            {"name": MONITORING_PROXY_TEMP_VOLUME, "emptyDir": {}},
        ]
    return containers, volumes


def _nats_env(cluster: Cluster) -> list[dict[str, Any]]:
    cluster_name, _ = identity(cluster)
    return [
        {
            "name": "MOTHERSHIP_NATS_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": names.nats_token_secret(cluster_name), "key": "token"}
            },
        },
        {"name": "MOTHERSHIP_NATS_STATEFULSET", "value": names.statefulset(cluster_name)},
        {"name": "MOTHERSHIP_NATS_SERVICE", "value": names.nats_service(cluster_name)},
        {"name": "MOTHERSHIP_NATS_REPLICAS", "value": str(cluster.spec.replicas)},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]


def nats_claim_template(cluster: Cluster) -> dict[str, Any]:
    persistence = cluster.spec.storage.nats.persistence
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": persistence.size or "1Gi"}},
    }
    if persistence.storage_class:
        spec["storageClassName"] = persistence.storage_class
    return {"metadata": {"name": NATS_VOLUME}, "spec": spec}


def container_port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "containerPort": port, "protocol": "TCP"}


def _manifest_mount(volume: str, stack: str) -> dict[str, Any]:
    """k0s applies each directory under manifests/ as one stack; we never write there."""
    return {"name": volume, "mountPath": f"{MANIFESTS_DIR}/{stack}", "readOnly": True}


def statefulset(cluster: Cluster, facts: Facts) -> dict[str, Any]:
    cluster_name, _ = identity(cluster)
    spec = cluster.spec
    image = k0s_image(spec, facts)
    entrypoint = names.entrypoint_config_map(cluster_name)
    telemetry = names.telemetry_config_map(cluster_name)
    data_name = data_volume_name(cluster)

    volumes: list[dict[str, Any]] = [
        {
            "name": entrypoint,
            "configMap": {
                "name": entrypoint,
                "defaultMode": ENTRYPOINT_MODE,
                "items": [{"key": configmaps.ENTRYPOINT_KEY, "path": configmaps.ENTRYPOINT_KEY}],
            },
        },
        _certs_volume(cluster),
    ]
    data = data_volume(cluster)
    if data is not None:
        volumes.append(data)
    mounts: list[dict[str, Any]] = [
        {
            "name": entrypoint,
            "mountPath": configmaps.ENTRYPOINT_PATH,
            "subPath": configmaps.ENTRYPOINT_KEY,
        },
        {"name": data_name, "mountPath": DATA_DIR},
    ]
    for volume in manifest_volumes(cluster, facts):
        volumes.append(volume)
        mounts.append(_manifest_mount(volume["name"], volume["name"]))
    for mount in spec.mounts or []:
        volume, volume_mount = user_mount(mount)
        volumes.append(volume)
        mounts.append(volume_mount)
    volumes.append({"name": telemetry, "configMap": {"name": telemetry}})
    mounts.append(_manifest_mount(telemetry, "k0s-telemetry"))

    ca = datastore_ca_volume(cluster, facts)
    if ca is not None:
        volumes.append(ca[0])
        mounts.append(ca[1])
    encrypted = not encryption.user_provider(spec.k0s_config)
    if encrypted:
        key_volume = encryption.volume(cluster_name, encryption.K0S_MODE)
        volumes.append(key_volume)
        mounts.append(
            {"name": key_volume["name"], "mountPath": encryption.K0S_DIR, "readOnly": True}
        )

    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": names.config_map(cluster_name)}}]
    kine_secret = configmaps.kine_secret(cluster_name, spec)
    env = etcd_datastore_env(cluster)
    if kine_secret and spec.storage.kine.data_store_ref is not None:
        # The operator's tenant Secret also holds ca.crt, no variable name: take the one key.
        env.append(_secret_env(KINE_DATASOURCE_SECRET_KEY, kine_secret, KINE_DATASOURCE_SECRET_KEY))
    elif kine_secret:
        env_from.append({"secretRef": {"name": kine_secret}})

    ports = [
        container_port("api", spec.service.api_port),
        container_port("konnectivity", spec.service.konnectivity_port),
    ]
    readiness, liveness = _probes(spec)
    controller: dict[str, Any] = {
        "name": "controller",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["/bin/sh", "-c", configmaps.ENTRYPOINT_PATH],
        "ports": ports,
        "envFrom": env_from,
        **({"env": env} if env else {}),
        "readinessProbe": readiness,
        "livenessProbe": liveness,
        "volumeMounts": mounts,
    }
    if spec.resources:
        controller["resources"] = copy.deepcopy(spec.resources)

    claim_templates: list[dict[str, Any]] = []
    sts_spec: dict[str, Any] = {}
    if spec.storage.type == "nats":
        # Members dial each other by pod name through the headless Service, and all must
        # start together: a member waits for the others before it becomes ready.
        sts_spec["serviceName"] = names.nats_service(cluster_name)
        sts_spec["podManagementPolicy"] = "Parallel"
        controller["env"] = env + _nats_env(cluster)
        ports.append(container_port("nats-cluster", configmaps.NATS_CLUSTER_PORT))
        mounts.append({"name": NATS_VOLUME, "mountPath": configmaps.NATS_STORE_DIR})
        claim_templates.append(nats_claim_template(cluster))

    init_containers = [
        {
            "name": "certs-init",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", _CERTS_INIT],
            "volumeMounts": [
                {"name": CERTS_VOLUME, "mountPath": CERTS_INIT_DIR},
                {"name": data_name, "mountPath": DATA_DIR},
            ],
        }
    ]
    # The client certificate k0s writes for admin access.
    credentials = [{"name": data_name, "mountPath": DATA_DIR}]
    out = assemble(
        cluster,
        facts,
        containers=[controller],
        init_containers=init_containers,
        volumes=volumes,
        extra_claim_templates=claim_templates,
        sts_spec=sts_spec,
        monitoring_credentials=credentials,
    )
    if encrypted:
        encryption.mark(out, cluster_name, facts.encryption_revision)
    return out


def assemble(
    cluster: Cluster,
    facts: Facts,
    *,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    init_containers: list[dict[str, Any]] | None = None,
    extra_claim_templates: list[dict[str, Any]] | None = None,
    sts_spec: dict[str, Any] | None = None,
    pod_spec: dict[str, Any] | None = None,
    monitoring_credentials: list[dict[str, Any]] | None = None,
    container_security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The StatefulSet `kmc-N` around a distribution's containers and volumes.

    Everything that does not depend on what runs inside the pod is decided here, once for
    every distribution: replicas and selector, the data claim template and its retention,
    monitoring sidecars, placement (anti-affinity, topology spread), the service account.
    `container_security` goes to every container, init containers and sidecars included:
    the Pod Security profiles judge each one (the pod's own comes in `pod_spec`).
    """
    cluster_name, _ = identity(cluster)
    spec = cluster.spec
    containers = list(containers)
    volumes = list(volumes)
    template_meta: dict[str, Any] = {"labels": names.labels(cluster_name, COMPONENT)}
    non_root = bool(((pod_spec or {}).get("securityContext") or {}).get("runAsNonRoot"))
    if spec.monitoring.enabled:
        sidecars, sidecar_volumes = _monitoring_sidecars(
            cluster, facts, monitoring_credentials or [], non_root=non_root
        )
        containers.extend(sidecars)
        volumes.extend(sidecar_volumes)
        template_meta["annotations"] = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(configmaps.METRICS_PROXY_PORT),
            "prometheus.io/path": "/metrics",
        }

    claim_templates: list[dict[str, Any]] = []
    data_claim = data_claim_template(cluster)
    if data_claim is not None:
        claim_templates.append(data_claim)
    claim_templates.extend(extra_claim_templates or [])

    out_spec: dict[str, Any] = {
        "replicas": spec.replicas,
        "selector": {"matchLabels": names.selector(cluster_name, COMPONENT)},
        **(sts_spec or {}),
    }
    if spec.persistence.type == "pvc" and spec.persistence.auto_delete_pvcs:
        out_spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete"}

    out_pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "affinity": scheduling.spread_affinity(cluster_name, COMPONENT),
        **(pod_spec or {}),
    }
    if container_security is not None:
        containers = [
            {**c, "securityContext": copy.deepcopy(container_security)} for c in containers
        ]
        init_containers = [
            {**c, "securityContext": copy.deepcopy(container_security)}
            for c in init_containers or []
        ]
    if init_containers:
        out_pod["initContainers"] = init_containers
    out_pod["containers"] = containers
    out_pod["volumes"] = volumes
    if spec.service_account:
        out_pod["serviceAccountName"] = spec.service_account
    if spec.topology_spread_constraints:
        out_pod["topologySpreadConstraints"] = copy.deepcopy(spec.topology_spread_constraints)

    store = (
        spec.storage.kine.data_store_ref
        if spec.storage.type == "kine"
        else spec.storage.etcd.data_store_ref
        if spec.storage.type == "etcd"
        else None
    )
    if store is not None:
        # The pods read their kine URL from a Secret whose content changes when the tenant
        # moves to another DataStore; naming the DataStore here rolls them onto the new one.
        template_meta["annotations"] = {
            **(template_meta.get("annotations") or {}),
            DATASTORE_TEMPLATE_ANNOTATION: store.name,
        }
        if facts.datastore_revision:
            template_meta["annotations"][DATASTORE_REVISION_TEMPLATE_ANNOTATION] = (
                facts.datastore_revision
            )
    out_spec["template"] = {"metadata": template_meta, "spec": out_pod}
    if claim_templates:
        out_spec["volumeClaimTemplates"] = claim_templates
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(cluster, names.statefulset(cluster_name), COMPONENT),
        "spec": out_spec,
    }


DATASTORE_CA_VOLUME = "datastore-ca"


def datastore_ca_volume(
    cluster: Cluster, facts: Facts
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(volume, mount) of the tenant Secret's files at TENANT_CA_DIR, where the kine URL (or
    --ca-file) or the k0s config names them: an SQL DataStore's CA when that DataStore has
    TLS; for the k0s distribution on an etcd DataStore, the CA and the client pair too."""
    spec = cluster.spec
    keys = [TLS_CA_CERT_KEY]
    if spec.storage.shared_etcd and spec.distribution != "kubernetes":
        keys += [ETCD_CLIENT_CERT_KEY, ETCD_CLIENT_KEY_KEY]
    elif not (
        facts.datastore_tls and spec.storage.type == "kine" and spec.storage.kine.data_store_ref
    ):
        return None
    volume = {
        "name": DATASTORE_CA_VOLUME,
        "secret": {
            "secretName": names.datastore_secret(identity(cluster)[0]),
            "items": [{"key": key, "path": key} for key in keys],
        },
    }
    mount = {"name": DATASTORE_CA_VOLUME, "mountPath": TENANT_CA_DIR, "readOnly": True}
    return volume, mount


def etcd_datastore_env(cluster: Cluster) -> list[dict[str, Any]]:
    """The etcd DataStore's endpoints and the tenant's key prefix, from the tenant Secret
    (named keys: ``envFrom`` would also try ca.crt and tls.key, which are no variable names)."""
    if not cluster.spec.storage.shared_etcd:
        return []
    secret = names.datastore_secret(identity(cluster)[0])
    return [
        _secret_env(configmaps.ETCD_SERVERS_ENV, secret, ETCD_ENDPOINTS_KEY),
        _secret_env(configmaps.ETCD_PREFIX_ENV, secret, ETCD_PREFIX_KEY),
    ]


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
