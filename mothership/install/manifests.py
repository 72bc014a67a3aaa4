"""Every object that installs the operator into a cluster, built once for two renderings.

``objects(Settings())`` is ``deploy/install.yaml``; the same builders, asked through a
:class:`~mothership.install.templating.HelmContext`, are the Helm chart's templates
(:mod:`mothership.install.chart`). What the operator may do (RBAC) is derived from what
the controllers and webhooks call, listed rule by rule below with the reason.

Webhook certificates and field ownership: the manifest (kubectl's or Helm's field
manager) owns the webhook configurations and the CRDs' conversion settings entirely,
except ``caBundle``. With self-managed certificates (the default) the operator fills in
``caBundle`` at start under a field manager of its own that owns nothing else, so
re-applying the manifest never conflicts with it and never removes the bundle. With
cert-manager, cert-manager's CA injector fills it in instead (annotation
``cert-manager.io/inject-ca-from``) and the operator registers nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any

from mothership.api.bootstrap.v1beta2 import GROUP as BOOTSTRAP_GROUP
from mothership.api.bootstrap.v1beta2 import WORKER_CONFIG_CRD
from mothership.api.controlplane.v1beta2 import CONTROL_PLANE_CRD
from mothership.api.controlplane.v1beta2 import GROUP as CONTROLPLANE_GROUP
from mothership.api.crdgen import all_crds
from mothership.api.infrastructure.v1beta2 import GROUP as INFRA_GROUP
from mothership.api.mothership import v1alpha1 as mothership_v1alpha1
from mothership.install.templating import Context, Doc, Obj, Plain
from mothership.render.facts import IMAGE_REPOSITORY_PATTERN
from mothership.render.node_join import DOWNLOAD_URL_PATTERN, REGISTRY_MIRROR_PATTERN
from mothership.webhooks.defaults import DEFAULT_ETCD_IMAGE_ENV
from mothership.webhooks.registration import (
    CONFIG_NAME,
    CRD_NAMES,
    ServiceRef,
    conversion_spec,
    webhook_configurations,
)
from mothership.webhooks.runtime import DEFAULT_CERT_SECRET

NAMESPACE = "mothership-system"
OPERATOR = "mothership-operator"  # ServiceAccount, Deployment, (Cluster)Roles, Lease
TENANTS_ROLE = "mothership-operator-tenants"
WEBHOOK_SERVICE = "mothership-webhook"
METRICS_SERVICE = "mothership-metrics"
CERT_SECRET = DEFAULT_CERT_SECRET
SELF_SIGNED_ISSUER = "mothership-selfsigned"
IMAGE_REPOSITORY = "localhost/mothership/operator"
CONTAINER = "operator"
UID = 65532
WEBHOOK_PORT = 9443
METRICS_PORT = 8080
HEALTH_PORT = 8081
CERT_DIR = "/var/run/mothership/webhook"
LEASE_NAME = "mothership-operator"
LOG_LEVELS = ("debug", "info", "warning")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")

PART_OF = {"app.kubernetes.io/part-of": "mothership"}
SELECTOR: dict[str, Any] = {
    "app.kubernetes.io/name": "mothership",
    "app.kubernetes.io/component": "operator",
}
KEEP = {"helm.sh/resource-policy": "keep"}  # helm uninstall leaves CRDs (and Clusters) alone

DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}


def version() -> str:
    """The package's version: the image tag and chart appVersion that match this code."""
    try:
        return metadata.version("mothership")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True)
class Settings:
    """What a user may change; the Helm values are the same settings under chart names."""

    namespace: str = NAMESPACE
    image_repository: str = IMAGE_REPOSITORY
    image_tag: str = ""  # empty: this package's version
    pull_policy: str = "IfNotPresent"
    replicas: int = 2
    resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    watch_namespaces: tuple[str, ...] = ()
    log_level: str = "info"
    cert_manager: bool = False
    cert_manager_issuer: dict[str, Any] | None = None  # None: a self-signed Issuer is made
    # Images of tenant pods when a Cluster names none; empty: the upstream defaults.
    kubernetes_image_template: str = ""  # {version} becomes the Cluster's version
    default_etcd_image: str = ""
    k0s_image_repository: str = ""  # in place of quay.io/k0sproject/k0s, tag unchanged
    # In place of the monitoring sidecars' default images (Prometheus, nginx).
    monitoring_prometheus_image: str = ""
    monitoring_proxy_image: str = ""
    # Where join commands send nodes for their components and images; empty: upstream.
    node_download_url: str = ""  # a mirror laid out like dl.k8s.io and GitHub
    node_registry_mirror: str = ""  # registry.k8s.io, docker.io, quay.io, ghcr.io pulls

    @property
    def image(self) -> str:
        return f"{self.image_repository}:{self.image_tag or version()}"

    def check(self) -> Settings:
        """Refuse settings the cluster would reject later, naming the setting and the fix."""
        problems = []
        if self.replicas < 1:
            problems.append(f"replicas {self.replicas}: at least 1 (2 for a standby)")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"log level {self.log_level!r}: one of {', '.join(LOG_LEVELS)}")
        if self.pull_policy not in PULL_POLICIES:
            problems.append(
                f"image pull policy {self.pull_policy!r}: one of {', '.join(PULL_POLICIES)}"
            )
        if not self.namespace:
            problems.append("namespace: must not be empty")
        template = self.kubernetes_image_template
        if template and "{version}" not in template:
            problems.append(
                f"kubernetes image template {template!r}: needs {{version}}, which becomes "
                "each Cluster's version, e.g. registry.example/control-plane:{version}"
            )
        repo = self.k0s_image_repository
        if repo and not re.match(IMAGE_REPOSITORY_PATTERN, repo):
            problems.append(
                f"k0s image repository {repo!r}: a repository without tag or digest "
                "(the tag comes from each Cluster's version), e.g. registry.example/k0s"
            )
        if self.node_download_url and not re.match(DOWNLOAD_URL_PATTERN, self.node_download_url):
            problems.append(
                f"node download URL {self.node_download_url!r}: empty or an http(s) URL, the "
                "base of a mirror laid out like dl.k8s.io and GitHub, e.g. http://10.200.0.1:8880"
            )
        mirror = self.node_registry_mirror
        if mirror and not re.match(REGISTRY_MIRROR_PATTERN, mirror):
            problems.append(
                f"node registry mirror {mirror!r}: empty or an http(s) URL of a registry "
                "(scheme, host and port, no path), e.g. http://10.200.0.1:5000"
            )
        if problems:
            raise ValueError("invalid install settings: " + "; ".join(problems))
        return self

    @classmethod
    def from_values(cls, values: dict[str, Any], namespace: str = NAMESPACE) -> Settings:
        """The settings a Helm values file stands for (unset values keep their defaults)."""
        image = values.get("image") or {}
        cert_manager = (values.get("webhook") or {}).get("certManager") or {}
        operator = values.get("operator") or {}
        base = cls()
        return replace(
            base,
            namespace=namespace,
            image_repository=image.get("repository", base.image_repository),
            image_tag=image.get("tag", base.image_tag) or "",
            pull_policy=image.get("pullPolicy", base.pull_policy),
            replicas=int(values.get("replicas", base.replicas)),
            resources=values.get("resources", base.resources),
            watch_namespaces=tuple(values.get("watchNamespaces") or ()),
            log_level=values.get("logLevel", base.log_level),
            cert_manager=bool(cert_manager.get("enabled", False)),
            cert_manager_issuer=cert_manager.get("issuerRef") or None,
            kubernetes_image_template=operator.get("kubernetesImageTemplate") or "",
            default_etcd_image=operator.get("defaultEtcdImage") or "",
            k0s_image_repository=operator.get("k0sImageRepository") or "",
            monitoring_prometheus_image=operator.get("monitoringPrometheusImage") or "",
            monitoring_proxy_image=operator.get("monitoringProxyImage") or "",
            node_download_url=operator.get("nodeDownloadURL") or "",
            node_registry_mirror=operator.get("nodeRegistryMirror") or "",
        )


def plain_context(settings: Settings) -> Plain:
    return Plain(
        values={
            "namespace": settings.namespace,
            "image": settings.image,
            "pullPolicy": settings.pull_policy,
            "replicas": settings.replicas,
            "resources": settings.resources,
            "logLevel": settings.log_level,
            "watchNamespaces": list(settings.watch_namespaces),
            "issuerRef": settings.cert_manager_issuer
            or {"kind": "Issuer", "name": SELF_SIGNED_ISSUER},
            "kubernetesImageTemplate": settings.kubernetes_image_template,
            "defaultEtcdImage": settings.default_etcd_image,
            "k0sImageRepository": settings.k0s_image_repository,
            "monitoringPrometheusImage": settings.monitoring_prometheus_image,
            "monitoringProxyImage": settings.monitoring_proxy_image,
            "nodeDownloadURL": settings.node_download_url,
            "nodeRegistryMirror": settings.node_registry_mirror,
        },
        conditions={
            "certManager": settings.cert_manager,
            "selfSignedIssuer": settings.cert_manager and not settings.cert_manager_issuer,
            "clusterWide": not settings.watch_namespaces,
            "namespaced": bool(settings.watch_namespaces),
            "kubernetesImageTemplate": bool(settings.kubernetes_image_template),
            "defaultEtcdImage": bool(settings.default_etcd_image),
            "k0sImageRepository": bool(settings.k0s_image_repository),
            "monitoringPrometheusImage": bool(settings.monitoring_prometheus_image),
            "monitoringProxyImage": bool(settings.monitoring_proxy_image),
            "nodeDownloadURL": bool(settings.node_download_url),
            "nodeRegistryMirror": bool(settings.node_registry_mirror),
        },
    )


def objects(settings: Settings | None = None) -> list[Obj]:
    """The install objects for these settings, in the order they must be applied."""
    s = (settings or Settings()).check()
    return [doc.obj for doc in documents(plain_context(s))]


def documents(ctx: Context, *, namespace_object: bool = True) -> list[Doc]:
    """Every object, in apply order: CRDs and namespace first, webhooks once served.

    ``namespace_object=False`` leaves out the Namespace: Helm installs into a namespace
    it is given (``--create-namespace``), it does not own it.
    """
    docs = [Doc(crd) for crd in crds(ctx)]
    if namespace_object:
        docs.append(Doc(namespace(ctx)))
    docs += [
        Doc(service_account(ctx)),
        Doc(cluster_role(ctx)),
        Doc(cluster_role_binding(ctx, OPERATOR, OPERATOR)),
        Doc(tenants_role(ctx)),
        *ctx.docs_if("clusterWide", [cluster_role_binding(ctx, TENANTS_ROLE, TENANTS_ROLE)]),
        *ctx.docs_each("watchNamespaces", lambda ns: tenants_role_binding(ctx, ns)),
        Doc(own_namespace_role(ctx)),
        Doc(own_namespace_role_binding(ctx)),
        Doc(webhook_service(ctx)),
        Doc(metrics_service(ctx)),
        *ctx.docs_if("selfSignedIssuer", [self_signed_issuer(ctx)]),
        *ctx.docs_if("certManager", [certificate(ctx)]),
        Doc(deployment(ctx)),
        Doc(disruption_budget(ctx)),
        *[Doc(obj) for obj in webhook_configs(ctx)],
    ]
    return docs


# -- metadata ----------------------------------------------------------------------------


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "mothership", "app.kubernetes.io/component": component}


def meta(ctx: Context, name: str, component: str, *, namespaced: bool = True) -> Obj:
    out: Obj = {"name": name}
    if namespaced:
        out["namespace"] = ctx.value("namespace")
    out["labels"] = {**labels(component), **PART_OF}
    return out


def _inject_ca(ctx: Context) -> Obj:
    """cert-manager's CA injector fills caBundle from the Certificate's CA."""
    return {"cert-manager.io/inject-ca-from": f"{ctx.value('namespace')}/{WEBHOOK_SERVICE}"}


# -- API ---------------------------------------------------------------------------------


def crds(ctx: Context) -> list[Obj]:
    """The CRDs from the models, converting through the webhook behind the Service."""
    ref = ServiceRef(ctx.value("namespace"), WEBHOOK_SERVICE, 443)
    client_config = conversion_spec(service=ref, ca_pem=None)["webhook"]["clientConfig"]
    out = []
    for crd in all_crds(conversion_webhook=client_config):
        metadata_ = {
            "name": crd["metadata"]["name"],
            # The models' labels stay: Cluster API reads a provider CRD's contract
            # versions from them (cluster.x-k8s.io/<contract>: <versions>).
            "labels": {**crd["metadata"].get("labels", {}), **labels("api"), **PART_OF},
            "annotations": {**KEEP, **ctx.entries_if("certManager", _inject_ca(ctx))},
        }
        out.append({**crd, "metadata": metadata_})
    return out


def namespace(ctx: Context) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": ctx.value("namespace"),
            "labels": {
                **labels("operator"),
                **PART_OF,
                # The operator's pods meet the restricted Pod Security Standard.
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }


# -- RBAC --------------------------------------------------------------------------------


def _rule(groups: list[str], resources: list[str], verbs: list[str], names: Any = None) -> Obj:
    rule: Obj = {"apiGroups": groups, "resources": resources}
    if names:
        rule["resourceNames"] = list(names)
    rule["verbs"] = verbs
    return rule


READ = ["get", "list", "watch"]
CONTROL_PLANES = CONTROL_PLANE_CRD.plural
WORKER_CONFIGS = WORKER_CONFIG_CRD.plural
DATASTORE_GROUP = mothership_v1alpha1.GROUP
DATASTORES = mothership_v1alpha1.PLURAL
# Server-side apply is a PATCH, and a PATCH that creates needs `create` as well.
APPLY = ["get", "list", "watch", "create", "patch"]


def cluster_role(ctx: Context) -> Obj:
    """What the operator needs beyond the namespaces it manages Clusters in."""
    rules = [
        # The webhook checks NodePorts against every Cluster, in every namespace.
        _rule(["k0smotron.io"], ["clusters"], READ),
        # External addresses of NodePort Clusters come from node addresses.
        _rule([""], ["nodes"], READ),
        # DataStores are cluster-scoped, so they are here whatever namespaces are watched:
        # the in-use finalizer by merge patch, tenants and Reachable in the status. The admin
        # Secret a DataStore names is read (get) through the tenants role: in any namespace
        # by default, else in the watched ones; own_namespace_role adds the operator's own.
        _rule([DATASTORE_GROUP], [DATASTORES], [*READ, "patch", "update"]),
        _rule([DATASTORE_GROUP], [f"{DATASTORES}/status"], ["get", "patch", "update"]),
        _rule([DATASTORE_GROUP], [f"{DATASTORES}/finalizers"], ["update"]),
        # kopf discovers served resources through the CRDs; caBundle of the conversion.
        _rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], READ),
        _rule(
            ["apiextensions.k8s.io"], ["customresourcedefinitions"], ["patch"], sorted(CRD_NAMES)
        ),
        # caBundle of the admission webhooks (self-managed certificates).
        _rule(
            ["admissionregistration.k8s.io"],
            ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
            ["get", "patch"],
            [CONFIG_NAME],
        ),
    ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(ctx, OPERATOR, "operator", namespaced=False),
        "rules": rules,
    }


def tenants_role(ctx: Context) -> Obj:
    """What reconciling Clusters and JoinTokenRequests takes, in each managed namespace.

    Bound cluster-wide by default, or once per watched namespace.
    """
    kinds = ["clusters", "jointokenrequests"]
    rules = [
        # Finalizers are added and removed by merge patch.
        _rule(["k0smotron.io"], kinds, [*READ, "patch", "update"]),
        _rule(["k0smotron.io"], [f"{k}/status" for k in kinds], ["get", "patch", "update"]),
        # Children carry ownerReferences with blockOwnerDeletion.
        _rule(["k0smotron.io"], [f"{k}/finalizers" for k in kinds], ["update"]),
        # A K0smotronControlPlane is served by a k0smotron.io Cluster the operator applies
        # (create) and removes with it (delete).
        _rule(["k0smotron.io"], ["clusters"], ["create", "delete"]),
        _rule([CONTROLPLANE_GROUP], [CONTROL_PLANES], [*READ, "patch", "update"]),
        _rule([CONTROLPLANE_GROUP], [f"{CONTROL_PLANES}/status"], ["get", "patch", "update"]),
        _rule([CONTROLPLANE_GROUP], [f"{CONTROL_PLANES}/finalizers"], ["update"]),
        # A K0sWorkerConfig: its status, a JoinTokenRequest per Machine, files from ConfigMaps.
        _rule([BOOTSTRAP_GROUP], [WORKER_CONFIGS], [*READ, "patch"]),
        _rule([BOOTSTRAP_GROUP], [f"{WORKER_CONFIGS}/status"], ["get", "patch", "update"]),
        _rule(["k0smotron.io"], ["jointokenrequests"], ["create"]),
        # Existing machines over SSH: provisioned, reserved from pools, reported ready.
        _rule([INFRA_GROUP], ["remotemachines", "remoteclusters"], [*READ, "patch"]),
        _rule([INFRA_GROUP], ["pooledremotemachines"], READ),
        _rule(
            [INFRA_GROUP],
            ["remotemachines/status", "remoteclusters/status", "pooledremotemachines/status"],
            ["get", "patch", "update"],
        ),
        _rule(["cluster.x-k8s.io"], ["machines"], READ),
        # provisionJob: the bootstrap and clean-up Jobs (their Secrets by the rule below),
        # and their pods, whose termination message says why a run failed.
        _rule(["batch"], ["jobs"], ["get", "create", "delete"]),
        _rule([""], ["pods"], ["list"]),
        # The tenant API server's log says why it refused an authentication file.
        _rule([""], ["pods/log"], ["get"]),
        # Cluster API's Cluster: the owner it reads, the endpoint it is told.
        _rule(["cluster.x-k8s.io"], ["clusters"], [*READ, "patch"]),
        # Children, all written by server-side apply (PKI Secrets by create-if-absent).
        # delete: a grown volume claim template means recreating the StatefulSet
        # (orphaning its pods), since the template is immutable.
        _rule(["apps"], ["statefulsets"], [*APPLY, "delete"]),
        _rule([""], ["services", "configmaps", "secrets"], APPLY),
        _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], APPLY),
        _rule(["batch"], ["cronjobs"], APPLY),
        _rule(["policy"], ["poddisruptionbudgets"], APPLY),
        # autoDeletePVCs removes the etcd claims on deletion; growing a claim patches it.
        _rule([""], ["persistentvolumeclaims"], [*READ, "patch", "delete"]),
        # kopf.info/warn: an Event per phase on the Cluster.
        _rule([""], ["events"], ["create"]),
    ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(ctx, TENANTS_ROLE, "operator", namespaced=False),
        "rules": rules,
    }


def _subjects(ctx: Context) -> list[Obj]:
    return [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": ctx.value("namespace")}]


def cluster_role_binding(ctx: Context, name: str, role: str) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(ctx, name, "operator", namespaced=False),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": _subjects(ctx),
    }


def tenants_role_binding(ctx: Context, watched: str) -> Obj:
    metadata_ = meta(ctx, TENANTS_ROLE, "operator")
    metadata_["namespace"] = watched
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata_,
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": TENANTS_ROLE,
        },
        "subjects": _subjects(ctx),
    }


def own_namespace_role(ctx: Context) -> Obj:
    """The operator's own namespace: its leader Lease and its webhook certificate Secret."""
    rules = [
        _rule(["coordination.k8s.io"], ["leases"], ["create"]),
        _rule(["coordination.k8s.io"], ["leases"], ["get", "update"], [LEASE_NAME]),
        _rule([""], ["secrets"], ["create"]),
        _rule([""], ["secrets"], ["get", "update"], [CERT_SECRET]),
        # DataStore admin Secrets kept beside the operator (spec.adminSecretRef), readable
        # even when this namespace is not one of the watched ones.
        _rule([""], ["secrets"], ["get"]),
    ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(ctx, OPERATOR, "operator"),
        "rules": rules,
    }


def own_namespace_role_binding(ctx: Context) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(ctx, OPERATOR, "operator"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": OPERATOR},
        "subjects": _subjects(ctx),
    }


def service_account(ctx: Context) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(ctx, OPERATOR, "operator"),
    }


# -- Services ----------------------------------------------------------------------------


def webhook_service(ctx: Context) -> Obj:
    """What the API server calls: any ready replica (standbys serve the webhooks too)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(ctx, WEBHOOK_SERVICE, "webhook"),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(SELECTOR),
            "ports": [
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "webhook"},
            ],
        },
    }


def metrics_service(ctx: Context) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(ctx, METRICS_SERVICE, "metrics"),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(SELECTOR),
            "ports": [
                {
                    "name": "metrics",
                    "port": METRICS_PORT,
                    "protocol": "TCP",
                    "targetPort": "metrics",
                }
            ],
        },
    }


# -- cert-manager (optional) -------------------------------------------------------------


def self_signed_issuer(ctx: Context) -> Obj:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": meta(ctx, SELF_SIGNED_ISSUER, "webhook"),
        "spec": {"selfSigned": {}},
    }


def certificate(ctx: Context) -> Obj:
    ns = ctx.value("namespace")
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": meta(ctx, WEBHOOK_SERVICE, "webhook"),
        "spec": {
            "secretName": CERT_SECRET,
            "dnsNames": [
                f"{WEBHOOK_SERVICE}.{ns}.svc",
                f"{WEBHOOK_SERVICE}.{ns}.svc.cluster.local",
            ],
            "issuerRef": ctx.block("issuerRef"),
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    }


# -- the operator ------------------------------------------------------------------------


def operator_args(ctx: Context) -> list[Any]:
    """`mothership operator run` in a pod: leader election, webhooks behind the Service."""
    ns = ctx.value("namespace")
    return [
        "operator",
        "run",
        "--leader-elect",
        "--webhooks",
        "--webhook-host=0.0.0.0",
        f"--webhook-port={WEBHOOK_PORT}",
        f"--webhook-service={ns}/{WEBHOOK_SERVICE}",
        f"--webhook-cert-dir={CERT_DIR}",
        *ctx.items_if(
            "certManager",
            ["--webhook-certs=provided", "--webhook-registration=none"],
            [
                "--webhook-certs=secret",
                f"--webhook-cert-secret={CERT_SECRET}",
                "--webhook-registration=ca-bundle",
            ],
        ),
        f"--metrics-port={METRICS_PORT}",
        f"--health-port={HEALTH_PORT}",
        f"--log-level={ctx.value('logLevel')}",
        "--log-format=json",
        *ctx.items_each("watchNamespaces", lambda watched: [f"--namespace={watched}"]),
    ]


# Read by `mothership operator run` (its --kubernetes-image-template, --default-etcd-image,
# --k0s-image-repository, --monitoring-prometheus-image, --monitoring-proxy-image).
# (The controller's constant is not imported: that would load kopf for `install --dry-run`;
# a unit test keeps the two equal.)
TENANT_IMAGE_ENV = {
    "kubernetesImageTemplate": "MOTHERSHIP_KUBERNETES_IMAGE_TEMPLATE",
    "defaultEtcdImage": DEFAULT_ETCD_IMAGE_ENV,
    "k0sImageRepository": "MOTHERSHIP_K0S_IMAGE_REPOSITORY",
    "monitoringPrometheusImage": "MOTHERSHIP_MONITORING_PROMETHEUS_IMAGE",
    "monitoringProxyImage": "MOTHERSHIP_MONITORING_PROXY_IMAGE",
}
# Read by `mothership operator run` (its --node-download-url, --node-registry-mirror) and put
# into the join commands of JoinTokenRequests (equal to the join_token controller's, as above).
NODE_MIRROR_ENV = {
    "nodeDownloadURL": "MOTHERSHIP_NODE_DOWNLOAD_URL",
    "nodeRegistryMirror": "MOTHERSHIP_NODE_REGISTRY_MIRROR",
}


def _env(ctx: Context) -> list[Any]:
    def field_ref(name: str, path: str) -> Obj:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    # POD_NAME is the leader identity: the Lease then names the pod that holds it.
    # The tenant image and node mirror settings are present only when set: absent means
    # upstream images and downloads.
    return [
        field_ref("POD_NAME", "metadata.name"),
        field_ref("POD_NAMESPACE", "metadata.namespace"),
        *[
            item
            for setting, env in {**TENANT_IMAGE_ENV, **NODE_MIRROR_ENV}.items()
            for item in ctx.items_if(setting, [{"name": env, "value": ctx.value(setting)}])
        ],
    ]


def _volumes(ctx: Context) -> list[Any]:
    return [
        *ctx.items_if(
            "certManager",
            [
                {
                    "name": "webhook-certs",
                    "secret": {"secretName": CERT_SECRET, "defaultMode": 0o440},
                }
            ],
            [{"name": "webhook-certs", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
        ),
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]


def deployment(ctx: Context) -> Obj:
    container = {
        "name": CONTAINER,
        "image": ctx.value("image"),
        "imagePullPolicy": ctx.value("pullPolicy"),
        "args": operator_args(ctx),
        "env": _env(ctx),
        "ports": [
            {"name": "webhook", "containerPort": WEBHOOK_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ],
        # Python starts in seconds; the startup probe gives a slow node a minute.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "health"},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        # The standby answers too: waiting for the Lease is healthy.
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "health"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        # Ready = serving the webhooks, which every replica does.
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "webhook", "scheme": "HTTPS"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "resources": ctx.block("resources"),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "webhook-certs", "mountPath": CERT_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec = {
        "serviceAccountName": OPERATOR,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Two replicas on two nodes where there are two: a node loss keeps the webhooks up.
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": dict(SELECTOR)},
                        },
                    }
                ]
            }
        },
        "containers": [container],
        "volumes": _volumes(ctx),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(ctx, OPERATOR, "operator"),
        "spec": {
            "replicas": ctx.value("replicas"),
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {
                "metadata": {
                    "labels": {**SELECTOR, **PART_OF},
                    "annotations": {"kubectl.kubernetes.io/default-container": CONTAINER},
                },
                "spec": pod_spec,
            },
        },
    }


def disruption_budget(ctx: Context) -> Obj:
    """A drain takes one replica at a time, so the webhooks keep an endpoint."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(ctx, OPERATOR, "operator"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(SELECTOR)}},
    }


# -- webhooks ----------------------------------------------------------------------------


def webhook_configs(ctx: Context) -> list[Obj]:
    """Admission configurations pointing at the Service, without caBundle (see module doc)."""
    ref = ServiceRef(ctx.value("namespace"), WEBHOOK_SERVICE, 443)
    out = []
    for config in webhook_configurations(service=ref, ca_pem=None):
        metadata_ = {
            "name": config["metadata"]["name"],
            "labels": {**labels("webhook"), **PART_OF},
            **ctx.entries_if("certManager", {"annotations": _inject_ca(ctx)}),
        }
        out.append({**config, "metadata": metadata_})
    return out
