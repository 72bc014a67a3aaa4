"""Hypothesis strategies and a small stand-in for the API server's CRD handling.

The strategies build k0smotron.io objects field by field from the shapes the models
declare (aliases, Literal enums, required keys), with values drawn from pools of what users
really type, right and wrong: quantities such as "lots", relative paths, URLs with odd
schemes, image refs with spaces, broken cron strings, CIDRs, flags, patch documents,
manifests missing their kind. Pure random text almost never reaches an admission rule.

:func:`as_api_server_stores` plays the part of the API server before admission: it prunes
what the CRD schema of the object's version does not know (and nulls), applies the schema's
defaults and checks the schema; objects it refuses never reach the webhook, so the
properties skip them.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

Obj = dict[str, Any]

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"
CRD_FILES = {
    "Cluster": "k0smotron.io_clusters.yaml",
    "JoinTokenRequest": "k0smotron.io_jointokenrequests.yaml",
}


# --- the API server's part: prune, default, check ---------------------------------------------


@cache
def _crd(kind: str) -> Obj:
    doc: Obj = yaml.safe_load((CRD_DIR / CRD_FILES[kind]).read_text())
    return doc


def crd_schema(kind: str, api_version: str) -> Obj:
    """The openAPIV3Schema of ``kind`` in ``api_version`` (``k0smotron.io/v1beta1``...)."""
    version = api_version.rpartition("/")[2]
    for served in _crd(kind)["spec"]["versions"]:
        if served["name"] == version:
            schema: Obj = served["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"{kind} has no version {version}")


def as_api_server_stores(obj: Obj) -> Obj | None:
    """``obj`` as the API server hands it to admission (pruned and defaulted), or None when
    the CRD schema refuses it. ``metadata`` is the API server's own business: kept as is."""
    schema = crd_schema(obj["kind"], obj["apiVersion"])
    work = copy.deepcopy(obj)
    metadata = work.pop("metadata", None)
    pruned = _prune(work, schema)
    _default(pruned, schema)
    if _schema_errors(pruned, schema, ""):
        return None
    if metadata is not None:
        pruned["metadata"] = metadata
    return pruned


def prune(obj: Obj) -> Obj:
    """What the API server keeps of ``obj`` under its version's schema (metadata untouched)."""
    schema = crd_schema(obj["kind"], obj["apiVersion"])
    work = copy.deepcopy(obj)
    metadata = work.pop("metadata", None)
    pruned = _prune(work, schema)
    if metadata is not None:
        pruned["metadata"] = metadata
    assert isinstance(pruned, dict)
    return pruned


def _preserves(schema: Obj) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def _prune(value: Any, schema: Obj) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out: Obj = {}
        for key, child in value.items():
            if child is None and not schema.get("nullable"):
                continue  # non-nullable nulls are dropped before defaulting
            if props is not None and key in props:
                out[key] = _prune(child, props[key])
            elif isinstance(extra, dict):
                out[key] = _prune(child, extra)
            elif _preserves(schema):
                out[key] = child
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(item, schema["items"]) for item in value]
    return value


def _default(value: Any, schema: Obj) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, prop in props.items():
            if "default" in prop and key not in value:
                value[key] = copy.deepcopy(prop["default"])
        for key, child in value.items():
            if key in props:
                _default(child, props[key])
            elif isinstance(schema.get("additionalProperties"), dict):
                _default(child, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(item, schema["items"])


def _type_ok(value: Any, schema: Obj) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    return kind is None or checks[kind](value)


def _schema_errors(value: Any, schema: Obj, path: str) -> list[str]:
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    if not _type_ok(value, schema):
        return [f"{path}: wrong type"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not in enum")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below minimum")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: too long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: pattern")
    if isinstance(value, dict):
        errors += [
            f"{path}.{key}: required" for key in schema.get("required", ()) if key not in value
        ]
        props = schema.get("properties") or {}
        for key, child in value.items():
            sub = props.get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                errors += _schema_errors(child, sub, f"{path}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += _schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def schema_has_path(kind: str, api_version: str, path: str) -> bool:
    """Whether ``path`` (``spec.storage.etcd.image``, ``spec.patches[0].patch.type``) names a
    field of the object's version; inside a free-form object every name counts."""
    if path.startswith("metadata."):
        return True  # ObjectMeta is the API server's; the CRD schema does not spell it out
    node: Obj = crd_schema(kind, api_version)
    for part in path.split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            return False
        key, indexes = match.groups()
        props = node.get("properties") or {}
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return _preserves(node)  # free-form below: any name counts, or none does
        for _ in re.findall(r"\[\d+\]", indexes):
            if node.get("type") != "array":
                return False
            node = node["items"]
    return True


# --- value pools: what people type ------------------------------------------------------------


def _pool(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


def _dns_label(max_len: int = 20) -> st.SearchStrategy[str]:
    return st.from_regex(rf"\A[a-z0-9]([a-z0-9-]{{0,{max_len - 2}}}[a-z0-9])?\Z")


# DNS-1123 subdomains (what the API server allows in metadata.name), long ones and dotted
# ones included: the webhook must refuse those whose generated names would not fit.
NAMES = st.one_of(
    _pool("demo", "a", "kmc", "my-cluster", "x1", "web.example", "a.b.c"),
    _dns_label(12),
    st.builds(lambda n: "c" * n, st.integers(40, 70)),
)
NAMESPACES = _pool("default", "tenants", "kube-system", "team-a")

TEXT = st.one_of(
    _pool("", "x", "value", "with space", "ünïcode", "a" * 70, "true", "0"),
    st.text(max_size=8),
)
LABEL_KEYS = _pool(
    "app",
    "team",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "cluster",
    "example.com/owner",
    "bad key!",
    "",
)
LABELS = st.dictionaries(LABEL_KEYS, TEXT, max_size=3)

QUANTITIES = st.one_of(
    _pool(
        "1Gi",
        "10Gi",
        "500Mi",
        "100m",
        "1.5e9",
        "0",
        "lots",
        "-1",
        "-1Gi",
        "1 Gi",
        "1gi",
        "",
        "+5G",
        ".5Ti",
        "1e",
        "Gi",
        "10GB",
        "1.5Gi",
        "0.0001",
    ),
    st.integers(-5, 2**40),
)
PATHS = _pool(
    "/var/lib/k0s/custom",
    "/etc/extra",
    "/",
    "relative/dir",
    "./here",
    "../etc",
    "",
    "/data with space",
    "C:\\data",
    "/var/lib/k0s",
    "//double",
    "/tmp/",
)
URLS = _pool(
    "postgres://k0s:secret@db:5432/k0s?sslmode=disable",
    "mysql://k0s:secret@tcp(db:3306)/k0s",
    "sqlite:///var/lib/k0s/db/state.db?more=rwc",
    "SQLITE:///tmp/x.db",
    "nats://nats:4222",
    "etcd://etcd:2379",
    "http://",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "not a url",
    "",
    "://missing-scheme",
)
IMAGES = _pool(
    "quay.io/k0sproject/k0s",
    "nginx:1.19.10",
    "registry:5000/team/image",
    "registry.example.com/a/b@sha256:" + "a" * 64,
    "my image",
    "UPPER/Case",
    "img:tag:tag",
    "",
    "localhost/mothership/control-plane:v1.35.4",
    " leading-space",
    "quay.io/k0sproject/k0s:v1.35.4-k0s.0",
)
CRONS = _pool("0 12 * * *", "@daily", "*/5 * * * *", "* * *", "61 * * * *", "", "every day")
CIDRS = _pool(
    "10.96.0.0/12",
    "10.244.0.0/16",
    "10.96.0.1/12",
    "10.0.0.0/30",
    "10.0.0.0/24",
    "fd00::/108",
    "10.96.0.0/12,fd00::/108",
    "not-a-cidr",
    "",
    "10.0.0.0/33",
    "300.0.0.0/8",
)
FLAGS = _pool(
    "--v=2",
    "--enable-admission-plugins=NodeRestriction",
    "-v",
    "v=2",
    "--",
    "--x",
    "--service-cluster-ip-range=10.0.0.0/24",
    "--data-dir=/tmp",
    "--x y",
    "",
    "--enable-worker",
    "--profiling=false",
    "--quota-backend-bytes=lots",
)
VERSIONS = _pool(
    "v1.35.4-k0s.0",
    "v1.35.4+k0s.1",
    "v1.35.4",
    "v1.34.0-k0s.0",
    "v1.34.1-k0s.0",
    "v1.33.2-k0s.0",
    "v1.30.1-rc.1-k0s.0",
    "1.35.4",
    "latest",
    "",
    "v1.35",
    "v1.36.0",
)
PORTS = st.one_of(
    _pool(30443, 30132, 6443, 8132, 443, 30000, 32767, 32768, 29999, 0, -1, 65535, 65536),
    st.integers(1, 65535),
)
ADDRESSES = _pool(
    "192.0.2.10",
    "api.example.com",
    "",
    "::1",
    "[::1]",
    "http://api.example.com",
    "host:6443",
    "2001:db8::1",
    "UPPER.example.com",
    "with space",
)
PATCH_KINDS = _pool("StatefulSet", "Service", "ConfigMap", "CronJob", "Deployment", "")
PATCH_COMPONENTS = _pool(
    "control-plane", "etcd", "cluster-config", "entrypoint", "monitoring", "nats", "nope", ""
)
PATCH_CONTENTS = _pool(
    '[{"op": "add", "path": "/metadata/labels/extra", "value": "x"}]',
    '[{"op": "replace", "path": "/metadata/name", "value": "other"}]',
    '[{"op": "remove", "path": "/spec/nope"}]',
    '[{"op": "frobnicate", "path": "/x"}]',
    '[{"op": "add"}]',
    '{"metadata": {"annotations": {"a": "b"}}}',
    '{"kind": null}',
    "metadata:\n  labels:\n    extra: x\n",
    "spec:\n  template:\n    spec:\n      containers:\n      - name: controller\n"
    "        env:\n        - name: X\n          value: y\n",
    "spec:\n  template:\n    spec:\n      containers:\n      - image: no-name\n",
    "{",
    "[]",
    "null",
    "",
    "- just\n- a list\n",
    "42",
    '{"spec": {"replicas": "three"}}',
)

RESOURCES = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "requests": st.dictionaries(_pool("cpu", "memory", "storage"), QUANTITIES, max_size=2),
            "limits": st.dictionaries(_pool("cpu", "memory"), QUANTITIES, max_size=2),
        },
    ),
)
VOLUME_SOURCES = st.one_of(
    st.builds(lambda n: {"configMap": {"name": n}}, _dns_label(8)),
    st.builds(lambda n: {"secret": {"secretName": n}}, _dns_label(8)),
    st.builds(lambda p: {"hostPath": {"path": p}}, PATHS),
    st.just({"emptyDir": {}}),
    st.just({}),
)
MOUNTS = st.builds(
    lambda path, src, ro: {"path": path, **src, **({"readOnly": ro} if ro is not None else {})},
    PATHS,
    VOLUME_SOURCES,
    st.one_of(st.none(), st.booleans()),
)
# spec.manifests are core/v1 Volumes; users also paste whole manifests, missing kind or name.
MANIFESTS = st.one_of(
    st.builds(lambda n, src: {"name": n, **src}, _dns_label(8), VOLUME_SOURCES),
    _pool(
        {"configMap": {"name": "stack"}},
        {"name": "no-source"},
        {},
        {"apiVersion": "v1", "metadata": {"name": "cm"}, "data": {"a": "b"}},
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cm"}},
        {"name": "Bad_Name", "configMap": {"name": "x"}},
    ),
)
TOPOLOGY = _pool(
    {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
    },
    {},
    {"maxSkew": -1, "topologyKey": ""},
)
NETWORK = st.fixed_dictionaries(
    {},
    optional={
        "provider": _pool("flannel", "custom", "calico", "kuberouter", "Flannel", "weave", ""),
        "serviceCIDR": CIDRS,
        "podCIDR": CIDRS,
        "clusterDomain": _pool("cluster.local", "example.internal", "", "UPPER.local"),
    },
)
K0S_CONFIG = st.one_of(
    st.just({}),
    st.builds(lambda n: {"spec": {"network": n}}, NETWORK),
    _pool(
        {"apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig"},
        {"spec": "not an object"},
        {"spec": {"network": "flannel"}},
        {"spec": {"api": {"sans": ["z.example", "10.0.0.1", ""]}}},
        {"spec": {"api": {"port": 7443}, "storage": {"type": "kine"}}},
        {"spec": {"network": {"serviceCIDR": 42}}},
    ),
)


def _opt(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Obj]:
    return st.fixed_dictionaries({}, optional=fields)


def _lists(of: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[list[Any]]:
    return st.lists(of, max_size=max_size)


KUBECONFIG_REF = st.fixed_dictionaries(
    {"name": _dns_label(10), "namespace": NAMESPACES}, optional={"key": _pool("value", "")}
)
INGRESS = st.fixed_dictionaries(
    {
        "apiHost": _pool("api.example.com", "k.example.com", "", "with space"),
        "konnectivityHost": _pool("konnectivity.example.com", "api.example.com", ""),
    },
    optional={
        "deploy": st.booleans(),
        "port": PORTS,
        "className": _pool("nginx", "haproxy", ""),
        "annotations": LABELS,
    },
)
SERVICE = _opt(
    type=_pool("ClusterIP", "NodePort", "LoadBalancer"),
    apiPort=PORTS,
    konnectivityPort=PORTS,
    annotations=LABELS,
    labels=LABELS,
    loadBalancerClass=_pool("example.com/lb", ""),
    externalTrafficPolicy=_pool("Cluster", "Local"),
)
PVC_TEMPLATE = _opt(
    apiVersion=_pool("v1"),
    kind=_pool("PersistentVolumeClaim"),
    metadata=_opt(name=_dns_label(8), labels=LABELS),
    spec=_opt(
        accessModes=_lists(_pool("ReadWriteOnce", "ReadWriteMany", "Sometimes"), 2),
        storageClassName=_pool("standard", ""),
        resources=_opt(requests=_opt(storage=QUANTITIES)),
    ),
)
PERSISTENCE = _opt(
    type=_pool("emptyDir", "hostPath", "pvc"),
    persistentVolumeClaim=PVC_TEMPLATE,
    autoDeletePVCs=st.booleans(),
    hostPath=PATHS,
)
STORAGE_PERSISTENCE = _opt(storageClass=_pool("standard", "fast", ""), size=QUANTITIES)
ETCD = _opt(
    image=IMAGES,
    args=_lists(FLAGS),
    persistence=STORAGE_PERSISTENCE,
    autoDeletePVCs=st.booleans(),
    defragJob=_opt(
        enabled=st.booleans(),
        schedule=CRONS,
        rule=_pool("dbQuotaUsage > 0.8", "", "not a rule ((("),
        image=IMAGES,
    ),
    resources=RESOURCES,
)
CERTIFICATE_REFS = _lists(
    st.fixed_dictionaries(
        {
            "type": _pool(
                "ca", "sa", "proxy", "etcd", "apiserver-etcd-client", "etcd-peer", "etcd-server"
            )
        },
        optional={"name": _pool("my-ca", "")},
    ),
    2,
)
MONITORING = _opt(enabled=st.booleans(), prometheusImage=IMAGES, proxyImage=IMAGES)
SECRET_METADATA = _opt(labels=LABELS, annotations=LABELS)
PATCHES = _lists(
    st.fixed_dictionaries(
        {
            "target": st.fixed_dictionaries({"kind": PATCH_KINDS, "component": PATCH_COMPONENTS}),
            "patch": st.fixed_dictionaries(
                {"type": _pool("json", "merge", "strategic"), "content": PATCH_CONTENTS}
            ),
        }
    ),
    2,
)
KUBERNETES = _opt(
    images=_opt(
        apiServer=IMAGES,
        controllerManager=IMAGES,
        scheduler=IMAGES,
        konnectivityServer=IMAGES,
        kine=IMAGES,
        kubeProxy=IMAGES,
        coreDNS=IMAGES,
        konnectivityAgent=IMAGES,
    )
)

# mothership's own (v1beta2 only): a shared DataStore by name, right and wrong.
DATA_STORE_REF = st.fixed_dictionaries(
    {"name": _pool("shared-postgres", "pg.db-1", "", "Shared_PG", "-x", "a" * 254)},
    optional={"reclaimPolicy": _pool("Retain", "Delete", "delete", "Keep")},
)

_COMMON_SPEC: dict[str, st.SearchStrategy[Any]] = {
    "replicas": st.integers(-1, 5),
    "image": IMAGES,
    "serviceAccount": _pool("cp", ""),
    "version": VERSIONS,
    "externalAddress": ADDRESSES,
    "ingress": INGRESS,
    "service": SERVICE,
    "persistence": PERSISTENCE,
    "k0sConfig": K0S_CONFIG,
    "certificateRefs": CERTIFICATE_REFS,
    "manifests": _lists(MANIFESTS, 2),
    "mounts": _lists(MOUNTS, 2),
    "monitoring": MONITORING,
    "topologySpreadConstraints": _lists(TOPOLOGY, 2),
    "resources": RESOURCES,
    "kubeconfigSecretMetadata": SECRET_METADATA,
}

CLUSTER_SPEC_V1BETA2 = _opt(
    **_COMMON_SPEC,
    distribution=_pool("k0s", "kubernetes"),
    kubernetes=KUBERNETES,
    remoteHostCluster=_opt(kubeconfigRef=KUBECONFIG_REF),
    controlPlaneFlags=_lists(FLAGS),
    storage=_opt(
        type=_pool("etcd", "kine", "nats"),
        kine=_opt(
            dataSourceURL=URLS,
            dataSourceSecretName=_pool("kine-db", ""),
            dataStoreRef=DATA_STORE_REF,
        ),
        etcd=ETCD,
        nats=_opt(persistence=STORAGE_PERSISTENCE),
    ),
    patches=PATCHES,
)
CLUSTER_SPEC_V1BETA1 = _opt(
    **_COMMON_SPEC,
    kubeconfigRef=KUBECONFIG_REF,
    kineDataSourceURL=URLS,
    kineDataSourceSecretName=_pool("kine-db", ""),
    controllerPlaneFlags=_lists(FLAGS),
    etcd=ETCD,
)

# Annotations, including the conversion bookkeeping ones, sometimes mangled.
ANNOTATIONS = st.dictionaries(
    _pool(
        "note",
        "k0smotron.io/conversion-data",
        "k0smotron.io/cluster-ref-namespace",
        "k0smotron.io/conversion-dropped-service.labels",
    ),
    _pool("", "x", "{}", '{"restore": []}', '{"restore": "nope"}', "other-ns", "[1"),
    max_size=2,
)


def metadata(names: st.SearchStrategy[str] = NAMES) -> st.SearchStrategy[Obj]:
    return st.fixed_dictionaries(
        {"name": names, "namespace": NAMESPACES},
        optional={"labels": LABELS, "annotations": ANNOTATIONS},
    )


def _conditions() -> st.SearchStrategy[list[Obj]]:
    return _lists(
        st.fixed_dictionaries(
            {
                "type": _pool("Available", "ControlPlaneFunctional"),
                "status": _pool("True", "False", "Unknown"),
                "reason": _pool("Ready", "Waiting"),
                "lastTransitionTime": _pool("2026-01-02T03:04:05Z"),
            },
            optional={"message": TEXT, "observedGeneration": st.integers(0, 9)},
        ),
        2,
    )


CLUSTER_STATUS = {
    "k0smotron.io/v1beta2": _opt(
        replicas=st.integers(0, 5),
        readyReplicas=st.integers(0, 5),
        updatedReplicas=st.integers(0, 5),
        selector=_pool("app=k0smotron", ""),
        version=VERSIONS,
        externalAddress=ADDRESSES,
        conditions=_conditions(),
        observedGeneration=st.integers(0, 9),
        deprecated=_opt(
            v1beta1=_opt(reconciliationStatus=TEXT, ready=st.booleans()),
        ),
    ),
    "k0smotron.io/v1beta1": _opt(
        reconciliationStatus=TEXT,
        ready=st.booleans(),
        replicas=st.integers(0, 5),
        selector=_pool("app=k0smotron", ""),
    ),
}


def clusters(
    api_version: str, *, with_status: bool = False, distribution: str | None = None
) -> st.SearchStrategy[Obj]:
    """Cluster objects of ``api_version`` as a user (or, with status, a reader) has them;
    ``spec: null`` included (k0smotron's docs write it for "all defaults")."""
    spec: st.SearchStrategy[Any] = (
        CLUSTER_SPEC_V1BETA2 if api_version.endswith("v1beta2") else CLUSTER_SPEC_V1BETA1
    )
    if distribution is not None:
        spec = spec.map(lambda s: {**s, "distribution": distribution})
    elif not with_status:
        spec = st.one_of(spec, st.none())
    optional = {"status": CLUSTER_STATUS[api_version]} if with_status else {}
    return st.fixed_dictionaries(
        {
            "apiVersion": st.just(api_version),
            "kind": st.just("Cluster"),
            "metadata": metadata(),
            "spec": spec,
        },
        optional=optional,
    )


EXPIRIES = _pool(
    "0s",
    "0",
    "1h",
    "1.5h",
    "2h45m",
    "300ms",
    "10us",
    "10µs",
    "10μs",
    "-1h",
    "-0s",
    "+1h",
    "1d",
    "forever",
    "",
    "1h30",
    "1.h",
    ".5h",
    "1h-30m",
    "24h0m0s",
    "1e3s",
)
JTR_SPECS = {
    "k0smotron.io/v1beta2": _opt(
        clusterName=st.one_of(_pool("demo", "x" * 63, "Demo", "bad.name"), _dns_label(10)),
        clusterRef=st.fixed_dictionaries(
            {"name": _pool("demo", "", "other")}, optional={"namespace": NAMESPACES}
        ),
        expiry=EXPIRIES,
        role=_pool("worker", "controller"),
    ),
    "k0smotron.io/v1beta1": st.fixed_dictionaries(
        {
            "clusterRef": st.fixed_dictionaries(
                {
                    "name": _pool("demo", "", "other"),
                    "namespace": st.one_of(NAMESPACES, st.just("")),
                }
            )
        },
        optional={"expiry": EXPIRIES, "role": _pool("worker", "controller")},
    ),
}
JTR_STATUS = {
    "k0smotron.io/v1beta2": _opt(
        tokenID=_pool("abc123", ""),
        conditions=_conditions(),
        deprecated=_opt(v1beta1=_opt(reconciliationStatus=TEXT, clusterUID=_pool("uid-1", ""))),
    ),
    "k0smotron.io/v1beta1": _opt(
        reconciliationStatus=TEXT, tokenID=_pool("abc123", ""), clusterUID=_pool("uid-1", "")
    ),
}


def join_token_requests(api_version: str, *, with_status: bool = False) -> st.SearchStrategy[Obj]:
    optional = {"status": JTR_STATUS[api_version]} if with_status else {}
    return st.fixed_dictionaries(
        {
            "apiVersion": st.just(api_version),
            "kind": st.just("JoinTokenRequest"),
            "metadata": metadata(_dns_label(10)),
            "spec": JTR_SPECS[api_version],
        },
        optional=optional,
    )


# What the controller knows besides the spec (render/facts.py): an address detected or not
# yet, an operator's image settings, a recorded version.
FACTS = st.fixed_dictionaries(
    {},
    optional={
        "external_address": _pool(None, "192.0.2.10", "api.example.com", "2001:db8::1"),
        "service_cluster_ips": _pool((), ("10.96.0.10",), ("10.96.0.10", "fd00::10")),
        "etcd_replicas": _pool(None, 1, 3),
        "default_etcd_image": _pool(None, "localhost/etcd:v3"),
        "k0s_image_repository": _pool(None, "mirror.example.com/k0s"),
        "monitoring_prometheus_image": _pool(None, "mirror.example.com/prometheus:v2"),
    },
)
