"""The `kubernetes` distribution: upstream components as separate containers in `kmc-N`.

One pod per replica runs kube-apiserver, kube-controller-manager, kube-scheduler and
konnectivity-server (plus kine when the data store is kine or NATS). They talk over
localhost and a Unix socket, so a pod is a whole control plane and replicas only share
the data store. Everything around the containers (the StatefulSet frame, Services, the CA
Secrets, persistence, monitoring, placement, patches) is the code the k0s distribution
uses; only the containers, their config files and the certificates they need are here.

Nothing in the pod template depends on the clock or on randomness: certificates live in
Secrets mounted by name, so re-rendering after an operator restart changes nothing.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import yaml

from mothership.api import quantity
from mothership.api.k0smotron.v1beta2 import (
    DEFAULT_KINE_IMAGE,
    DEFAULT_KONNECTIVITY_SERVER_IMAGE,
    KINE_DATASOURCE_SECRET_KEY,
    UPSTREAM_REGISTRY,
    Cluster,
    ClusterSpec,
    GoRuntime,
)
from mothership.api.mothership.v1alpha1 import (
    ETCD_CLIENT_CERT_KEY,
    ETCD_CLIENT_KEY_KEY,
    TENANT_CA_DIR,
    TLS_CA_CERT_KEY,
)
from mothership.render import (
    authentication,
    configmaps,
    encryption,
    names,
    network,
    statefulset,
)
from mothership.render.etcd import CLIENT_PORT as ETCD_CLIENT_PORT
from mothership.render.facts import (
    Facts,
    RenderError,
    external_address,
    identity,
    kubernetes_version,
    object_meta,
)

COMPONENT = statefulset.COMPONENT
CONFIG_COMPONENT = "control-plane-config"

PKI_DIR = "/etc/kubernetes/pki"
# A Cluster on an etcd DataStore: the tenant Secret's files and keys the API server reads.
DATASTORE_CA_FILE = "datastore-ca.crt"
DATASTORE_CERT_FILE = "datastore-client.crt"
DATASTORE_KEY_FILE = "datastore-client.key"
ETCD_SERVERS_ENV = configmaps.ETCD_SERVERS_ENV
ETCD_PREFIX_ENV = configmaps.ETCD_PREFIX_ENV
CONFIG_DIR = "/etc/kubernetes/config"
ENCRYPTION_DIR = "/etc/kubernetes/encryption"
DATA_DIR = "/var/lib/mothership"
UDS_DIR = "/run/konnectivity"
UDS_PATH = f"{UDS_DIR}/konnectivity-server.socket"
EGRESS_KEY = "egress-selector.yaml"
NATS_KEY = "nats.conf"

CONFIG_VOLUME = "kubernetes-config"
UDS_VOLUME = "konnectivity-uds"
KINE_ADDRESS = f"127.0.0.1:{ETCD_CLIENT_PORT}"
# How long a terminating API server keeps answering (see apiserver_flags); kine, its
# storage in the same pod, stays this much longer so those answers can still read and write.
SHUTDOWN_DELAY_SECONDS = 3
KINE_OUTLIVES_APISERVER_SECONDS = 2
KINE_SQLITE_FILE = f"{DATA_DIR}/kine.db"
# kine's own SQLite defaults (WAL, a long busy timeout, immediate transactions).
KINE_SQLITE_PARAMS = (
    "_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate"
    "&_stmt_cache_size=20&cache=shared"
)
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
KONNECTIVITY_ADMIN_PORT = 8133
KONNECTIVITY_HEALTH_PORT = 8134
KONNECTIVITY_AUDIENCE = "system:konnectivity-server"
KONNECTIVITY_AGENT_ACCOUNT = "konnectivity-agent"
FRONT_PROXY_CLIENT = "front-proxy-client"

# Keys of the `<cluster>-kubernetes-certs` Secret (see kubernetes_certs.py).
APISERVER_CERT = "apiserver"
KUBELET_CLIENT_CERT = "apiserver-kubelet-client"
FRONT_PROXY_CLIENT_CERT = "front-proxy-client"
MONITORING_CERT = "monitoring"
CONTROLLER_MANAGER_KUBECONFIG = "controller-manager.conf"
SCHEDULER_KUBECONFIG = "scheduler.conf"
KONNECTIVITY_KUBECONFIG = "konnectivity-server.conf"

# Control plane components an operator image template stands in for, by the binary name
# such an all-in-one image carries; the upstream images name some binaries differently.
TEMPLATE_BINARIES = {
    "apiServer": "kube-apiserver",
    "controllerManager": "kube-controller-manager",
    "scheduler": "kube-scheduler",
    "konnectivityServer": "konnectivity-server",
    "kine": "kine",
}
UPSTREAM_COMMANDS = {
    "apiServer": "kube-apiserver",
    "controllerManager": "kube-controller-manager",
    "scheduler": "kube-scheduler",
    "konnectivityServer": "/proxy-server",
    "kine": "kine",
}


# --- images -----------------------------------------------------------------------------------


def _override(spec: ClusterSpec, component: str) -> str | None:
    images = spec.kubernetes.images if spec.kubernetes else None
    if images is None:
        return None
    value = images.model_dump(by_alias=True).get(component)
    return value or None


def image_and_command(spec: ClusterSpec, facts: Facts, component: str) -> tuple[str, list[str]]:
    """(image, command) of one control plane component.

    The spec's image wins; then the operator's template (an all-in-one image that holds each
    binary under its own name); then the upstream image, run as upstream builds it.
    """
    version = kubernetes_version(spec, facts)
    override = _override(spec, component)
    if override:
        return override, [UPSTREAM_COMMANDS[component]]
    if facts.kubernetes_image_template:
        image = facts.kubernetes_image_template.replace("{version}", version)
        return image, [TEMPLATE_BINARIES[component]]
    upstream = {
        "apiServer": f"{UPSTREAM_REGISTRY}/kube-apiserver:{version}",
        "controllerManager": f"{UPSTREAM_REGISTRY}/kube-controller-manager:{version}",
        "scheduler": f"{UPSTREAM_REGISTRY}/kube-scheduler:{version}",
        "konnectivityServer": DEFAULT_KONNECTIVITY_SERVER_IMAGE,
        "kine": DEFAULT_KINE_IMAGE,
    }
    return upstream[component], [UPSTREAM_COMMANDS[component]]


# --- flags ------------------------------------------------------------------------------------


def _flag_name(flag: str) -> str:
    return flag.split("=", 1)[0]


SQLITE_POLL_INTERVAL = "10s"

# Container -> its field in spec.kubernetes.tuning.
TUNING_OF = {
    "kube-apiserver": "api_server",
    "kube-controller-manager": "controller_manager",
    "kube-scheduler": "scheduler",
    "konnectivity-server": "konnectivity_server",
    "kine": "kine",
}


def tuned(container: dict[str, Any], tuning: GoRuntime) -> dict[str, Any]:
    """The container with its spec.kubernetes.tuning: extra flags merged, Go runtime env."""
    out = dict(container)
    flags = getattr(tuning, "flags", None)
    if flags:
        out["args"] = merge_flags(list(container["args"]), list(flags))
    env = []
    if tuning.go_gc is not None:
        env.append({"name": "GOGC", "value": str(tuning.go_gc)})
    if tuning.go_memory_limit is not None:
        # Plain bytes: Go reads B/KiB/MiB suffixes, not Kubernetes' Mi or M.
        env.append(
            {"name": "GOMEMLIMIT", "value": str(int(quantity.parse(tuning.go_memory_limit)))}
        )
    if env:
        out["env"] = [*(container.get("env") or []), *env]
    return out


def merge_flags(ours: list[str], user: list[str]) -> list[str]:
    """Our flags, minus those the user gives, then the user's in their order.

    A flag the user names replaces ours entirely (every value of it), so repeating a flag
    never leaves it to the binary to pick one.
    """
    taken = {_flag_name(flag) for flag in user}
    return [flag for flag in ours if _flag_name(flag) not in taken] + list(user)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def advertise(cluster: Cluster, facts: Facts) -> tuple[str, str]:
    """(--advertise-address, --endpoint-reconciler-type).

    Workers reach the API at the external address, so that is what the tenant's
    `kubernetes` Service must point at. Every replica advertises the same address, and the
    lease reconciler keeps it there. A host name cannot go into an Endpoints object: then
    the pod advertises itself and publishes nothing.
    """
    address = external_address(cluster.spec, facts)
    if address and _is_ip(address):
        return address, "lease"
    return "$(POD_IP)", "none"


def _storage_flags(cluster: Cluster) -> list[str]:
    cluster_name, _ = identity(cluster)
    if cluster.spec.storage.shared_etcd:
        # The tenant Secret the operator wrote: where the DataStore's etcd is, and a client
        # certificate whose user may touch this prefix only. Compaction needs etcd's root
        # role, which no tenant has: the DataStore's etcd compacts itself.
        return [
            f"--etcd-servers=$({ETCD_SERVERS_ENV})",
            f"--etcd-cafile={PKI_DIR}/{DATASTORE_CA_FILE}",
            f"--etcd-certfile={PKI_DIR}/{DATASTORE_CERT_FILE}",
            f"--etcd-keyfile={PKI_DIR}/{DATASTORE_KEY_FILE}",
            f"--etcd-prefix=$({ETCD_PREFIX_ENV})",
            "--etcd-compaction-interval=0",
        ]
    if cluster.spec.storage.type != "etcd":
        return [f"--etcd-servers=http://{KINE_ADDRESS}"]
    return [
        f"--etcd-servers=https://{names.etcd(cluster_name)}:{ETCD_CLIENT_PORT}",
        f"--etcd-cafile={PKI_DIR}/etcd-ca.crt",
        f"--etcd-certfile={PKI_DIR}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={PKI_DIR}/apiserver-etcd-client.key",
        # One prefix per cluster, as k0s sets it: a shared or restored etcd never mixes tenants.
        f"--etcd-prefix=/{cluster_name}",
    ]


def apiserver_flags(cluster: Cluster, facts: Facts) -> list[str]:
    spec = cluster.spec
    address, reconciler = advertise(cluster, facts)
    domain = network.cluster_domain(spec)
    ours = [
        f"--advertise-address={address}",
        "--allow-privileged=true",
        "--anonymous-auth=true",
        *authentication.apiserver_flags(cluster, CONFIG_DIR),
        "--authorization-mode=Node,RBAC",
        "--bind-address=0.0.0.0",
        f"--client-ca-file={PKI_DIR}/ca.crt",
        f"--egress-selector-config-file={CONFIG_DIR}/{EGRESS_KEY}",
        "--enable-admission-plugins=NodeRestriction",
        # Aggregated APIs on nodes (metrics-server) are dialled by endpoint through the
        # tunnel; their Service's cluster IP means nothing in the mothership's network.
        "--enable-aggregator-routing=true",
        "--enable-bootstrap-token-auth=true",
        *encryption.apiserver_flags(ENCRYPTION_DIR),
        f"--endpoint-reconciler-type={reconciler}",
        *_storage_flags(cluster),
        f"--kubelet-client-certificate={PKI_DIR}/{KUBELET_CLIENT_CERT}.crt",
        f"--kubelet-client-key={PKI_DIR}/{KUBELET_CLIENT_CERT}.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--profiling=false",
        f"--proxy-client-cert-file={PKI_DIR}/{FRONT_PROXY_CLIENT_CERT}.crt",
        f"--proxy-client-key-file={PKI_DIR}/{FRONT_PROXY_CLIENT_CERT}.key",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        f"--requestheader-client-ca-file={PKI_DIR}/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--secure-port={spec.service.api_port}",
        f"--service-account-issuer=https://kubernetes.default.svc.{domain}",
        f"--service-account-key-file={PKI_DIR}/sa.pub",
        f"--service-account-signing-key-file={PKI_DIR}/sa.key",
        f"--service-cluster-ip-range={network.service_cidr(spec)}",
        # On SIGTERM keep answering (with /readyz failing) while the pod's endpoint leaves
        # the Service everywhere: a rolling upgrade or a drained replica then refuses no
        # request that kube-proxy still sends its way.
        f"--shutdown-delay-duration={SHUTDOWN_DELAY_SECONDS}s",
        f"--tls-cert-file={PKI_DIR}/{APISERVER_CERT}.crt",
        f"--tls-private-key-file={PKI_DIR}/{APISERVER_CERT}.key",
    ]
    return merge_flags(ours, list(spec.control_plane_flags or []))


def _delegated_auth(kubeconfig: str) -> list[str]:
    path = f"{PKI_DIR}/{kubeconfig}"
    return [
        f"--authentication-kubeconfig={path}",
        f"--authorization-kubeconfig={path}",
        f"--kubeconfig={path}",
    ]


def leader_elect_flag(cluster: Cluster) -> str:
    """Leader election for the controller-manager and scheduler only with replicas > 1.

    One replica is one pod of a StatefulSet, which never runs two pods of the same name:
    there is nobody to elect against. Electing anyway costs a Lease write per component
    every 2 s (half of an idle control plane's requests, measured with `bench density`),
    and a restarted controller-manager (which does not release its Lease on the way out)
    waited for its predecessor's Lease to expire. The tuning flags can turn it back on.
    """
    return f"--leader-elect={'true' if cluster.spec.replicas > 1 else 'false'}"


def controller_manager_flags(cluster: Cluster) -> list[str]:
    cluster_name, _ = identity(cluster)
    spec = cluster.spec
    return [
        "--allocate-node-cidrs=true",
        *_delegated_auth(CONTROLLER_MANAGER_KUBECONFIG),
        # Probes come from the kubelet, i.e. from outside the pod's loopback.
        "--bind-address=0.0.0.0",
        f"--client-ca-file={PKI_DIR}/ca.crt",
        f"--cluster-cidr={network.pod_cidr(spec)}",
        f"--cluster-name={cluster_name}",
        f"--cluster-signing-cert-file={PKI_DIR}/ca.crt",
        f"--cluster-signing-key-file={PKI_DIR}/ca.key",
        # Bootstrap tokens: signed cluster-info for joining nodes, expired tokens removed.
        "--controllers=*,bootstrapsigner,tokencleaner",
        leader_elect_flag(cluster),
        "--profiling=false",
        f"--requestheader-client-ca-file={PKI_DIR}/front-proxy-ca.crt",
        f"--root-ca-file={PKI_DIR}/ca.crt",
        f"--service-account-private-key-file={PKI_DIR}/sa.key",
        f"--service-cluster-ip-range={network.service_cidr(spec)}",
        "--use-service-account-credentials=true",
    ]


def scheduler_flags(cluster: Cluster) -> list[str]:
    return [
        *_delegated_auth(SCHEDULER_KUBECONFIG),
        "--bind-address=0.0.0.0",
        leader_elect_flag(cluster),
        "--profiling=false",
    ]


def konnectivity_flags(cluster: Cluster) -> list[str]:
    spec = cluster.spec
    return [
        f"--admin-port={KONNECTIVITY_ADMIN_PORT}",
        "--agent-namespace=kube-system",
        f"--agent-port={spec.service.konnectivity_port}",
        f"--agent-service-account={KONNECTIVITY_AGENT_ACCOUNT}",
        f"--authentication-audience={KONNECTIVITY_AUDIENCE}",
        # Agents dial the same address as kubelets and verify it with the cluster CA, so
        # the API server's serving certificate (same SANs) serves them too.
        f"--cluster-cert={PKI_DIR}/{APISERVER_CERT}.crt",
        f"--cluster-key={PKI_DIR}/{APISERVER_CERT}.key",
        "--delete-existing-uds-file=true",
        f"--health-port={KONNECTIVITY_HEALTH_PORT}",
        f"--kubeconfig={PKI_DIR}/{KONNECTIVITY_KUBECONFIG}",
        "--logtostderr=true",
        "--mode=grpc",
        "--proxy-strategies=destHost,default",
        f"--server-count={max(1, spec.replicas)}",
        "--server-id=$(POD_NAME)",
        "--server-port=0",
        f"--uds-name={UDS_PATH}",
    ]


def kine_endpoint(cluster: Cluster) -> str | None:
    """The kine --endpoint, or None when it comes from the Secret (KINE_ENDPOINT env)."""
    storage = cluster.spec.storage
    if storage.type == "nats":
        return configmaps.nats_data_source(cluster.spec.replicas)
    if configmaps.kine_secret(identity(cluster)[0], cluster.spec):
        return None
    if storage.kine.data_source_url:
        return storage.kine.data_source_url
    return f"sqlite://{KINE_SQLITE_FILE}?{KINE_SQLITE_PARAMS}"


# --- config files -------------------------------------------------------------------------------


def egress_selector() -> dict[str, Any]:
    """Traffic to nodes (logs, exec, port-forward, webhooks and services on nodes) goes
    through konnectivity-server over the Unix socket; the control plane and etcd are
    reached directly."""
    return {
        "apiVersion": "apiserver.k8s.io/v1beta1",
        "kind": "EgressSelectorConfiguration",
        "egressSelections": [
            {
                "name": "cluster",
                "connection": {
                    "proxyProtocol": "GRPC",
                    "transport": {"uds": {"udsName": UDS_PATH}},
                },
            },
            {"name": "controlplane", "connection": {"proxyProtocol": "Direct"}},
            {"name": "etcd", "connection": {"proxyProtocol": "Direct"}},
        ],
    }


def nats_config(cluster: Cluster) -> str:
    """The embedded NATS server's configuration, the same file for every member.

    The image has no shell to write per-pod files with, so what differs per pod comes
    from the environment: NATS resolves `$NAME` from it. Routes to every member
    (including the member itself, which NATS recognises and skips) carry the shared token.
    """
    cluster_name, _ = identity(cluster)
    lines = [
        "server_name: $POD_NAME",
        f"listen: 127.0.0.1:{configmaps.NATS_CLIENT_PORT}",
        f"jetstream {{\n  store_dir: {configmaps.NATS_STORE_DIR}\n}}",
    ]
    replicas = cluster.spec.replicas
    if replicas > 1:
        routes = "\n".join(f"    $MOTHERSHIP_NATS_ROUTE_{i}" for i in range(replicas))
        lines.append(
            "cluster {\n"
            f"  name: {names.statefulset(cluster_name)}\n"
            f"  listen: 0.0.0.0:{configmaps.NATS_CLUSTER_PORT}\n"
            "  authorization {\n    user: nats\n    password: $MOTHERSHIP_NATS_TOKEN\n  }\n"
            f"  routes: [\n{routes}\n  ]\n"
            "}"
        )
    return "\n".join(lines) + "\n"


def config_map(cluster: Cluster) -> dict[str, Any]:
    """Files the components read: the egress selector, NATS' config with storage nats, and
    the authentication configuration when the Cluster trusts an identity provider."""
    cluster_name, _ = identity(cluster)
    data = {
        EGRESS_KEY: yaml.safe_dump(egress_selector(), sort_keys=False, default_flow_style=False)
    }
    if cluster.spec.storage.type == "nats":
        data[NATS_KEY] = nats_config(cluster)
    authn = authentication.file_text(cluster)
    if authn is not None:
        data[authentication.FILE] = authn
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(
            cluster, names.kubernetes_config_map(cluster_name), CONFIG_COMPONENT
        ),
        "data": data,
    }


# --- volumes ------------------------------------------------------------------------------------


def _projection(secret: str, items: dict[str, str]) -> dict[str, Any]:
    return {
        "secret": {
            "name": secret,
            "items": [{"key": key, "path": path} for key, path in items.items()],
        }
    }


def _pki_volume(name: str, sources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "projected": {"sources": sources}}


def _secrets(cluster: Cluster) -> dict[str, str]:
    """Secret name per certificate purpose: the user's certificateRefs, else ours."""
    cluster_name, _ = identity(cluster)
    refs = dict(statefulset.certificate_refs(cluster))
    for purpose in ("ca", "proxy", "sa", "etcd", "apiserver-etcd-client"):
        refs.setdefault(purpose, names.pki_secret(cluster_name, purpose))
    refs["kubernetes"] = names.kubernetes_certs_secret(cluster_name)
    return refs


def _pair(prefix: str) -> dict[str, str]:
    return {f"{prefix}.crt": f"{prefix}.crt", f"{prefix}.key": f"{prefix}.key"}


def pki_volumes(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """One projected volume per container, holding only what that container reads.

    The controller manager alone gets the CA key (it signs kubelet certificates); the API
    server and the controller manager share the service account key (the API server signs
    tokens with it, the controller manager signs service account tokens too).
    """
    s = _secrets(cluster)
    ca_crt = _projection(s["ca"], {"tls.crt": "ca.crt"})
    proxy_crt = _projection(s["proxy"], {"tls.crt": "front-proxy-ca.crt"})
    apiserver = [
        ca_crt,
        proxy_crt,
        _projection(s["sa"], {"tls.crt": "sa.pub", "tls.key": "sa.key"}),
        _projection(
            s["kubernetes"],
            {
                **_pair(APISERVER_CERT),
                **_pair(KUBELET_CLIENT_CERT),
                **_pair(FRONT_PROXY_CLIENT_CERT),
            },
        ),
    ]
    if cluster.spec.storage.shared_etcd:
        apiserver.append(
            _projection(
                names.datastore_secret(identity(cluster)[0]),
                {
                    TLS_CA_CERT_KEY: DATASTORE_CA_FILE,
                    ETCD_CLIENT_CERT_KEY: DATASTORE_CERT_FILE,
                    ETCD_CLIENT_KEY_KEY: DATASTORE_KEY_FILE,
                },
            )
        )
    if cluster.spec.storage.managed_etcd:
        apiserver += [
            _projection(s["etcd"], {"tls.crt": "etcd-ca.crt"}),
            _projection(
                s["apiserver-etcd-client"],
                {"tls.crt": "apiserver-etcd-client.crt", "tls.key": "apiserver-etcd-client.key"},
            ),
        ]
    volumes = {
        "kube-apiserver": _pki_volume("pki-apiserver", apiserver),
        "kube-controller-manager": _pki_volume(
            "pki-controller-manager",
            [
                _projection(s["ca"], {"tls.crt": "ca.crt", "tls.key": "ca.key"}),
                copy.deepcopy(proxy_crt),
                _projection(s["sa"], {"tls.key": "sa.key"}),
                _projection(
                    s["kubernetes"], {CONTROLLER_MANAGER_KUBECONFIG: "controller-manager.conf"}
                ),
            ],
        ),
        "kube-scheduler": _pki_volume(
            "pki-scheduler",
            [_projection(s["kubernetes"], {SCHEDULER_KUBECONFIG: SCHEDULER_KUBECONFIG})],
        ),
        "konnectivity-server": _pki_volume(
            "pki-konnectivity",
            [
                _projection(
                    s["kubernetes"],
                    {**_pair(APISERVER_CERT), KONNECTIVITY_KUBECONFIG: KONNECTIVITY_KUBECONFIG},
                )
            ],
        ),
    }
    return volumes


def monitoring_pki_volume(cluster: Cluster) -> dict[str, Any]:
    """The files the shared scrape config names: a client certificate in the
    system:monitoring group as admin.*, and the etcd CA pair for etcd's metrics."""
    s = _secrets(cluster)
    sources = [
        _projection(
            s["kubernetes"],
            {f"{MONITORING_CERT}.crt": "admin.crt", f"{MONITORING_CERT}.key": "admin.key"},
        )
    ]
    if cluster.spec.storage.managed_etcd:
        sources.append(_projection(s["etcd"], {"tls.crt": "etcd-ca.crt", "tls.key": "etcd-ca.key"}))
    return _pki_volume("pki-monitoring", sources)


# --- containers ---------------------------------------------------------------------------------


def _https_probe(path: str, port: int, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTPS"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _mount(volume: str, path: str, *, read_only: bool = True) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": volume, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount


def _container(
    name: str, image_command: tuple[str, list[str]], args: list[str], mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    image, command = image_command
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "args": args,
        "volumeMounts": mounts,
    }


def _kine_container(cluster: Cluster, facts: Facts) -> dict[str, Any] | None:
    spec = cluster.spec
    if spec.storage.type == "etcd":
        return None
    cluster_name, namespace = identity(cluster)
    args = [f"--listen-address={KINE_ADDRESS}", "--metrics-bind-address=0"]
    endpoint = kine_endpoint(cluster)
    env: list[dict[str, Any]] = []
    if endpoint is not None and endpoint.startswith("sqlite:"):
        # kine polls its database for rows other writers inserted; its own inserts wake
        # the watches at once. A pod's SQLite has no other writer, so the 1 s poll was
        # idle work (bench density: kine 8 -> 5.5 millicores at rest).
        args.append(f"--datastore-poll-interval={SQLITE_POLL_INTERVAL}")
    if endpoint is not None:
        args.append(f"--endpoint={endpoint}")
    else:
        # Straight from the Secret into kine's environment: never in the pod spec.
        env.append(
            {
                "name": "KINE_ENDPOINT",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": configmaps.kine_secret(cluster_name, spec),
                        "key": KINE_DATASOURCE_SECRET_KEY,
                    }
                },
            }
        )
    mounts = [_mount(statefulset.data_volume_name(cluster), DATA_DIR, read_only=False)]
    ca = statefulset.datastore_ca_volume(cluster, facts)
    if ca is not None:
        # The PostgreSQL URL names the file itself; a MySQL DSN cannot, this flag does.
        args.append(f"--ca-file={TENANT_CA_DIR}/{TLS_CA_CERT_KEY}")
        mounts.append(ca[1])
    ports: list[dict[str, Any]] = []
    # Every container of a terminating pod gets SIGTERM at once; kine's is held back (the
    # kubelet's own sleep, no shell needed in the image) until the API server has stopped.
    lifecycle = {
        "preStop": {"sleep": {"seconds": SHUTDOWN_DELAY_SECONDS + KINE_OUTLIVES_APISERVER_SECONDS}}
    }
    if spec.storage.type == "nats":
        env.append(_field_env("POD_NAME", "metadata.name"))
        env.append(
            {
                "name": "MOTHERSHIP_NATS_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": names.nats_token_secret(cluster_name), "key": "token"}
                },
            }
        )
        sts = names.statefulset(cluster_name)
        service = names.nats_service(cluster_name)
        for i in range(spec.replicas if spec.replicas > 1 else 0):
            env.append(
                {
                    "name": f"MOTHERSHIP_NATS_ROUTE_{i}",
                    "value": (
                        f"nats://nats:$(MOTHERSHIP_NATS_TOKEN)@{sts}-{i}.{service}."
                        f"{namespace}.svc:{configmaps.NATS_CLUSTER_PORT}"
                    ),
                }
            )
        mounts += [
            {"name": statefulset.NATS_VOLUME, "mountPath": configmaps.NATS_STORE_DIR},
            {
                "name": CONFIG_VOLUME,
                "mountPath": configmaps.NATS_CONFIG_PATH,
                "subPath": NATS_KEY,
                "readOnly": True,
            },
        ]
        ports.append(statefulset.container_port("nats-cluster", configmaps.NATS_CLUSTER_PORT))
    container = _container("kine", image_and_command(spec, facts, "kine"), args, mounts)
    container["lifecycle"] = lifecycle
    if env:
        container["env"] = env
    if ports:
        container["ports"] = ports
    return container


def containers(cluster: Cluster, facts: Facts) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(containers, volumes) of one control plane pod, in a fixed order."""
    spec = cluster.spec
    pki = pki_volumes(cluster)
    config = names.kubernetes_config_map(identity(cluster)[0])
    volumes: list[dict[str, Any]] = [
        {"name": CONFIG_VOLUME, "configMap": {"name": config}},
        {"name": UDS_VOLUME, "emptyDir": {}},
        *pki.values(),
    ]
    data = statefulset.data_volume(cluster)
    if data is not None:
        volumes.append(data)
    ca = statefulset.datastore_ca_volume(cluster, facts)
    if ca is not None:
        volumes.append(ca[0])

    key_volume = encryption.volume(identity(cluster)[0])
    volumes.append(key_volume)
    apiserver_mounts = [
        _mount(pki["kube-apiserver"]["name"], PKI_DIR),
        _mount(CONFIG_VOLUME, CONFIG_DIR),
        _mount(UDS_VOLUME, UDS_DIR, read_only=False),
        _mount(key_volume["name"], ENCRYPTION_DIR),
    ]
    for mount in spec.mounts or []:
        volume, volume_mount = statefulset.user_mount(mount)
        volumes.append(volume)
        apiserver_mounts.append(volume_mount)

    apiserver = _container(
        "kube-apiserver",
        image_and_command(spec, facts, "apiServer"),
        apiserver_flags(cluster, facts),
        apiserver_mounts,
    )
    apiserver["env"] = [_field_env("POD_IP", "status.podIP")]
    apiserver["env"] += statefulset.etcd_datastore_env(cluster)
    apiserver["ports"] = [statefulset.container_port("api", spec.service.api_port)]
    port = spec.service.api_port
    # Startup gets three minutes (a cold kine or etcd) and ends when the API server is
    # ready, not merely live: the kubelet runs the readiness probe as soon as startup
    # succeeds, so the pod is Ready within a second of /readyz instead of a readiness
    # period after a /livez that comes first (bench provision: about 2 s of a 14 s start).
    # After that a stuck API server is restarted within a minute and a not-ready one
    # leaves the Service within seconds.
    apiserver["startupProbe"] = _https_probe("/readyz", port, period=1, failures=180)
    apiserver["livenessProbe"] = _https_probe("/livez", port, period=10, failures=6)
    apiserver["readinessProbe"] = _https_probe("/readyz", port, period=3, failures=3)
    if spec.resources:
        apiserver["resources"] = copy.deepcopy(spec.resources)

    controller_manager = _container(
        "kube-controller-manager",
        image_and_command(spec, facts, "controllerManager"),
        controller_manager_flags(cluster),
        [_mount(pki["kube-controller-manager"]["name"], PKI_DIR)],
    )
    controller_manager["livenessProbe"] = _https_probe(
        "/healthz", CONTROLLER_MANAGER_PORT, period=10, failures=6
    )
    scheduler = _container(
        "kube-scheduler",
        image_and_command(spec, facts, "scheduler"),
        scheduler_flags(cluster),
        [_mount(pki["kube-scheduler"]["name"], PKI_DIR)],
    )
    scheduler["livenessProbe"] = _https_probe("/healthz", SCHEDULER_PORT, period=10, failures=6)
    konnectivity = _container(
        "konnectivity-server",
        image_and_command(spec, facts, "konnectivityServer"),
        konnectivity_flags(cluster),
        [
            _mount(pki["konnectivity-server"]["name"], PKI_DIR),
            _mount(UDS_VOLUME, UDS_DIR, read_only=False),
        ],
    )
    konnectivity["env"] = [_field_env("POD_NAME", "metadata.name")]
    konnectivity["ports"] = [
        statefulset.container_port("konnectivity", spec.service.konnectivity_port)
    ]
    konnectivity["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": KONNECTIVITY_HEALTH_PORT, "scheme": "HTTP"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 6,
    }
    out = [apiserver, controller_manager, scheduler, konnectivity]
    kine = _kine_container(cluster, facts)
    if kine is not None:
        out.append(kine)
    tuning = spec.kubernetes.tuning if spec.kubernetes else None
    if tuning is not None:
        out = [tuned(container, getattr(tuning, TUNING_OF[container["name"]])) for container in out]
    if spec.monitoring.enabled:
        volumes.append(monitoring_pki_volume(cluster))
    return out, volumes


def control_plane_statefulset(cluster: Cluster, facts: Facts) -> dict[str, Any]:
    """`kmc-N` for the kubernetes distribution.

    Replicas start in parallel (each is a whole control plane; there is no member join
    order) and roll one at a time, each waiting for the previous to be Ready.
    """
    spec = cluster.spec
    cluster_name, _ = identity(cluster)
    if spec.ingress is not None:
        raise RenderError(
            "spec.ingress is not supported with spec.distribution kubernetes; expose the "
            "control plane with spec.service (NodePort or LoadBalancer) instead"
        )
    container_list, volumes = containers(cluster, facts)
    sts_spec: dict[str, Any] = {
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
    }
    claims: list[dict[str, Any]] = []
    if spec.storage.type == "nats":
        sts_spec["serviceName"] = names.nats_service(cluster_name)
        claims.append(statefulset.nats_claim_template(cluster))
    monitoring_credentials = (
        [_mount("pki-monitoring", configmaps.PKI_DIR)] if spec.monitoring.enabled else []
    )
    pod_security, container_security = pod_security_contexts(volumes)
    out = statefulset.assemble(
        cluster,
        facts,
        containers=container_list,
        volumes=volumes,
        extra_claim_templates=claims,
        sts_spec=sts_spec,
        # No service links: a namespace with many Services would otherwise fill every
        # container's environment, and nothing here reads them.
        pod_spec={"enableServiceLinks": False, "securityContext": pod_security},
        monitoring_credentials=monitoring_credentials,
        container_security=container_security,
    )
    encryption.mark(out, cluster_name, facts.encryption_revision)
    return out


def pod_security_contexts(volumes: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) securityContext: the restricted Pod Security profile, non-root.

    Nothing in the pod needs root: the components write only kine's data directory,
    konnectivity's socket directory (both emptyDirs or claims, which the kubelet hands to
    the pod's fsGroup) and their own scratch, and the ports are unprivileged. A hostPath
    volume (persistence type hostPath, or one of spec.mounts) is the exception: the
    kubelet applies no fsGroup to it, so the pod keeps running as root there (see
    statefulset.host_path_security); such a pod is refused by a restricted or baseline
    namespace whatever it runs as.
    """
    if statefulset.uses_host_path(volumes):
        return statefulset.host_path_security()
    return statefulset.restricted_security(statefulset.NON_ROOT_ID)


def pod_disruption_budget(cluster: Cluster) -> dict[str, Any] | None:
    """With two or more replicas, voluntary evictions (drains) take one pod at a time."""
    if cluster.spec.replicas < 2:
        return None
    cluster_name, _ = identity(cluster)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(cluster, names.statefulset(cluster_name), COMPONENT),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": names.selector(cluster_name, COMPONENT)},
        },
    }


def render_control_plane(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    """The kubernetes distribution's own objects, in apply order.

    The StatefulSet waits for the external address: it is the address the API server
    advertises and the one its certificate names, and starting without it would mean
    restarting every pod a moment later.
    """
    out: list[dict[str, Any]] = [config_map(cluster)]
    if external_address(cluster.spec, facts):
        out.append(control_plane_statefulset(cluster, facts))
    pdb = pod_disruption_budget(cluster)
    if pdb is not None:
        out.append(pdb)
    return out
