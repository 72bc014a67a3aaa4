"""The ConfigMaps of a control plane: k0s config, entrypoint, endpoint, telemetry, monitoring.

The k0s config is the user's ClusterConfig with the fields the operator owns laid over it.
Only what the topology dictates is overwritten (ports, storage, the address the API is
reached at); everything else the user wrote reaches k0s untouched, and an operator value
that is empty never erases the user's.
"""

from __future__ import annotations

import copy
import json
import shlex
from typing import Any, cast

import yaml

from mothership.api.k0smotron.v1beta2 import Cluster, ClusterSpec
from mothership.api.mothership.v1alpha1 import (
    ETCD_CLIENT_CERT_KEY,
    ETCD_CLIENT_KEY_KEY,
    TENANT_CA_DIR,
    TLS_CA_CERT_KEY,
)
from mothership.render import encryption, names
from mothership.render.facts import (
    Facts,
    RenderError,
    core_version,
    external_address,
    identity,
    k0s_version,
    object_meta,
)

K0S_CONFIG_API_VERSION = "k0s.k0sproject.io/v1beta1"
K0S_CONFIG_KEY = "K0SMOTRON_K0S_YAML"
ENTRYPOINT_KEY = "k0smotron-entrypoint.sh"
ENTRYPOINT_PATH = "/k0smotron-entrypoint.sh"
K0S_CONFIG_PATH = "/etc/k0s/k0s.yaml"
PKI_DIR = "/var/lib/k0s/pki"
CLUSTER_DOMAIN = "cluster.local"

# The kine URL of a Secret-backed data source is only known inside the pod (the Secret is
# mounted as environment); the ConfigMap carries this marker and the entrypoint swaps the
# URL in. Kept out of the user-visible API, so ours rather than k0smotron's spelling.
KINE_URL_PLACEHOLDER = "__MOTHERSHIP_KINE_DATASOURCE_URL__"
# An etcd DataStore's endpoints and the tenant's key prefix, from the tenant Secret by
# environment (the same variables the kubernetes distribution's API server reads).
ETCD_SERVERS_ENV = "MOTHERSHIP_ETCD_SERVERS"
ETCD_PREFIX_ENV = "MOTHERSHIP_ETCD_PREFIX"
ETCD_SERVERS_PLACEHOLDER = "__MOTHERSHIP_ETCD_SERVERS__"
ETCD_PREFIX_PLACEHOLDER = "__MOTHERSHIP_ETCD_PREFIX__"

NATS_STORE_DIR = "/nats-data"
NATS_CONFIG_PATH = "/etc/nats/nats.conf"
NATS_CLIENT_PORT = 4222
NATS_CLUSTER_PORT = 6222

# The first k0s release whose konnectivity agent honours spec.konnectivity.externalAddress;
# older ones need the agent manifest the ingress module ships.
NATIVE_INGRESS_KONNECTIVITY = (1, 35, 1)

TELEMETRY_PROVIDER = "mothership"


# --- k0s config --------------------------------------------------------------------------


def sans(cluster: Cluster, facts: Facts) -> list[str]:
    """API server certificate SANs: every name the API is reached by, sorted and unique.

    Sorted so the ConfigMap (and thus the pods) does not change when nothing did.
    """
    cluster_name, namespace = identity(cluster)
    spec = cluster.spec
    service = names.service(cluster_name, spec.service.type)
    wanted = {
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}",
        *facts.service_cluster_ips,
    }
    address = external_address(spec, facts)
    if address:
        wanted.add(address)
    if spec.ingress is not None:
        # Worker-side haproxy dials the API on the node itself.
        wanted.update({"127.0.0.1", "localhost", spec.ingress.api_host})
        wanted.add(spec.ingress.konnectivity_host)
    user = _nested(spec.k0s_config or {}, "spec", "api", "sans")
    if isinstance(user, list):
        wanted.update(str(san) for san in user)
    wanted.discard("")
    return sorted(wanted)


def native_ingress_konnectivity(spec: ClusterSpec, facts: Facts) -> bool:
    """Whether k0s itself points its konnectivity agents at the ingress host.

    An unparsable version counts as old: shipping the agent manifest needlessly is
    harmless, not shipping it leaves the cluster without konnectivity.
    """
    version = core_version(k0s_version(spec, facts))
    return version is not None and version >= NATIVE_INGRESS_KONNECTIVITY


def k0s_config(cluster: Cluster, facts: Facts) -> dict[str, Any]:
    """The ClusterConfig k0s runs with: the user's, with the operator's fields laid over it."""
    user = copy.deepcopy(cluster.spec.k0s_config or {})
    api_version = user.get("apiVersion") or K0S_CONFIG_API_VERSION
    if api_version != K0S_CONFIG_API_VERSION:
        raise RenderError(
            f"spec.k0sConfig.apiVersion {api_version!r} is not supported "
            f"(only {K0S_CONFIG_API_VERSION})"
        )
    user["apiVersion"] = api_version
    user.setdefault("kind", "ClusterConfig")
    return cast(dict[str, Any], _overlay(user, {"spec": _operator_spec(cluster, facts)}))


def _operator_spec(cluster: Cluster, facts: Facts) -> dict[str, Any]:
    spec = cluster.spec
    cluster_name, _ = identity(cluster)
    api: dict[str, Any] = {"port": spec.service.api_port, "sans": sans(cluster, facts)}
    konnectivity: dict[str, Any] = {"agentPort": spec.service.konnectivity_port}
    nllb = _nested(spec.k0s_config or {}, "spec", "network", "nodeLocalLoadBalancing", "enabled")
    extra: dict[str, str] = {}
    if not encryption.user_provider(spec.k0s_config):
        # The tenant's Secrets reach the datastore sealed with the Cluster's own key.
        extra.update(encryption.k0s_extra_args())
    if spec.storage.shared_etcd:
        # Only etcd's root may compact; the etcd DataStore's owner runs auto-compaction.
        extra["etcd-compaction-interval"] = "0"
    if extra:
        api["extraArgs"] = extra
    if spec.ingress is not None:
        ingress = spec.ingress
        api["externalAddress"] = _host_port(ingress.api_host, ingress.port)
        # Workers reach the API through the ingress, not through endpoints the API server
        # would publish for itself.
        api.setdefault("extraArgs", {})["endpoint-reconciler-type"] = "none"
        if native_ingress_konnectivity(spec, facts):
            konnectivity["externalAddress"] = _host_port(ingress.konnectivity_host, ingress.port)
        else:
            konnectivity["externalAddress"] = ingress.konnectivity_host
    elif nllb is not True:
        # With node-local load balancing the workers balance over the controllers
        # themselves and k0s must not advertise a single external address.
        api["externalAddress"] = external_address(spec, facts) or ""
    return {"api": api, "konnectivity": konnectivity, "storage": _storage(cluster_name, spec)}


def kine_secret(cluster_name: str, spec: ClusterSpec) -> str | None:
    """The Secret whose K0SMOTRON_KINE_DATASOURCE_URL key kine reads, if the URL is not inline.

    Either the user's own (``storage.kine.dataSourceSecretName``) or, for a Cluster on a
    shared DataStore, the one the operator writes with the tenant's generated credentials:
    the pods consume both the same way, so a password is never in a pod spec or ConfigMap.
    """
    kine = spec.storage.kine
    if spec.storage.type != "kine":
        return None
    if kine.data_store_ref is not None:
        return names.datastore_secret(cluster_name)
    return kine.data_source_secret_name or None


def _storage(cluster_name: str, spec: ClusterSpec) -> dict[str, Any]:
    storage = spec.storage
    if storage.type == "nats":
        return {"type": "kine", "kine": {"dataSource": nats_data_source(spec.replicas)}}
    if storage.type == "kine":
        if kine_secret(cluster_name, spec):
            source = KINE_URL_PLACEHOLDER
        else:
            source = storage.kine.data_source_url or ""
        return {"type": "kine", "kine": {"dataSource": source}}
    if storage.shared_etcd:
        # The endpoints (one comma-joined item: k0s joins the list with commas anyway) and
        # the prefix are in the tenant Secret: the entrypoint swaps them in.
        return {
            "type": "etcd",
            "etcd": {
                "externalCluster": {
                    "endpoints": [ETCD_SERVERS_PLACEHOLDER],
                    "etcdPrefix": ETCD_PREFIX_PLACEHOLDER,
                    "caFile": f"{TENANT_CA_DIR}/{TLS_CA_CERT_KEY}",
                    "clientCertFile": f"{TENANT_CA_DIR}/{ETCD_CLIENT_CERT_KEY}",
                    "clientKeyFile": f"{TENANT_CA_DIR}/{ETCD_CLIENT_KEY_KEY}",
                }
            },
        }
    return {
        "type": "etcd",
        "etcd": {
            "externalCluster": {
                "endpoints": [f"https://{names.etcd(cluster_name)}:2379"],
                # One prefix per cluster keeps a shared etcd (or a restore into another
                # cluster) from mixing tenants.
                "etcdPrefix": cluster_name,
                "caFile": f"{PKI_DIR}/etcd-ca.crt",
                "clientCertFile": f"{PKI_DIR}/apiserver-etcd-client.crt",
                "clientKeyFile": f"{PKI_DIR}/apiserver-etcd-client.key",
            }
        },
    }


def nats_data_source(replicas: int) -> str:
    """kine's NATS URL: the embedded server reads the file the entrypoint writes."""
    if replicas <= 1:
        return f"nats://?serverConfig={NATS_CONFIG_PATH}"
    return f"nats://?serverConfig={NATS_CONFIG_PATH}&replicas={replicas}"


def _overlay(user: Any, ours: Any) -> Any:
    """Our value wins, except that empty values keep the user's and maps merge key by key."""
    if not isinstance(ours, dict):
        return copy.deepcopy(ours)
    merged = copy.deepcopy(user) if isinstance(user, dict) else {}
    for key, value in ours.items():
        if value is None or value == "":
            continue
        merged[key] = _overlay(merged.get(key), value) if isinstance(value, dict) else value
    return merged


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _nested(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _dump(obj: Any) -> str:
    # Through JSON first: plain types only, and shared sub-objects would otherwise come
    # out as YAML anchors that some readers of these files do not expect.
    plain = json.loads(json.dumps(obj))
    # libyaml's emitter when present: the same text, several times faster (this runs on
    # every reconcile of every cluster).
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(
        plain, Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True
    )


def config_config_map(cluster: Cluster, facts: Facts) -> dict[str, Any]:
    cluster_name, _ = identity(cluster)
    text = _dump(k0s_config(cluster, facts))
    # Single-quoted, so the entrypoint can drop in any value by doubling its quotes.
    for placeholder in ENV_PLACEHOLDERS.values():
        text = text.replace(placeholder, f"'{placeholder}'")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cluster, names.config_map(cluster_name), "cluster-config"),
        "data": {K0S_CONFIG_KEY: text},
    }


# --- entrypoint ----------------------------------------------------------------------------


def controller_flags(spec: ClusterSpec) -> list[str]:
    """`k0s controller` flags: the user's first, ours only where the user set none."""
    flags = list(spec.control_plane_flags or [])

    def given(flag: str) -> bool:
        return any(f == flag or f.startswith(f"{flag}=") for f in flags)

    extra = []
    if not given("--config"):
        extra.append(f"--config={K0S_CONFIG_PATH}")
    if not given("--enable-dynamic-config"):
        extra.append("--enable-dynamic-config")
    if spec.ingress is not None:
        extra.append("--disable-components=endpoint-reconciler")
    return flags + extra


# Environment variable -> the placeholder the entrypoint replaces with its value.
ENV_PLACEHOLDERS = {
    "K0SMOTRON_KINE_DATASOURCE_URL": KINE_URL_PLACEHOLDER,
    ETCD_SERVERS_ENV: ETCD_SERVERS_PLACEHOLDER,
    ETCD_PREFIX_ENV: ETCD_PREFIX_PLACEHOLDER,
}

# awk program replacing `marker` with the value of the environment variable `var`, quotes
# doubled (`sq` is a single quote). A module constant so tests can run it on its own.
ENV_VALUE_AWK = """
    BEGIN { value = ENVIRON[var]; gsub(sq, sq sq, value) }
    value == "" { print; next }
    {
      done = ""
      while ((at = index($0, marker)) > 0) {
        done = done substr($0, 1, at - 1) value
        $0 = substr($0, at + length(marker))
      }
      print done $0
    }"""

_ENTRYPOINT_HEAD = """#!/bin/sh
# Written by mothership. Turns what the pod is given (environment, mounts) into the
# files k0s reads, then becomes `k0s controller` so it receives the pod's signals.
set -eu

mkdir -p /etc/k0s
printf '%s\\n' "$K0SMOTRON_K0S_YAML" > /etc/k0s/k0s.yaml

# A kine URL kept in a Secret (or an etcd DataStore's endpoints and key prefix) arrives
# as an environment variable. The config holds a single-quoted placeholder for each: awk
# swaps the value in without interpreting it, and doubling quote characters keeps the
# YAML string intact whatever the value contains. A variable that is not set leaves its
# placeholder (and the file) as it was.
swap() {
  awk -v "sq='" -v var="$1" -v marker="$2" '@ENV_AWK@' /etc/k0s/k0s.yaml \\
    > /etc/k0s/k0s.yaml.new
  mv /etc/k0s/k0s.yaml.new /etc/k0s/k0s.yaml
}
@SWAPS@

# Embedded NATS: kine starts the server from this file. Members find each other through
# the headless Service; each one routes to all the others.
if [ -n "${MOTHERSHIP_NATS_TOKEN:-}" ]; then
  mkdir -p "$(dirname @NATS_CONFIG@)"
  {
    printf 'server_name: %s\\n' "$HOSTNAME"
    printf 'listen: 127.0.0.1:@NATS_CLIENT_PORT@\\n'
    printf 'jetstream {\\n  store_dir: @NATS_STORE@\\n}\\n'
    members="${MOTHERSHIP_NATS_REPLICAS:-1}"
    if [ "$members" -gt 1 ]; then
      me="${HOSTNAME##*-}"
      printf 'cluster {\\n  name: %s\\n' "$MOTHERSHIP_NATS_STATEFULSET"
      printf '  listen: 0.0.0.0:@NATS_CLUSTER_PORT@\\n'
      printf '  authorization {\\n    user: nats\\n    password: "%s"\\n  }\\n' \\
        "$MOTHERSHIP_NATS_TOKEN"
      printf '  routes: [\\n'
      peer=0
      while [ "$peer" -lt "$members" ]; do
        if [ "$peer" != "$me" ]; then
          printf '    nats://nats:%s@%s-%s.%s.%s.svc:@NATS_CLUSTER_PORT@\\n' \\
            "$MOTHERSHIP_NATS_TOKEN" "$MOTHERSHIP_NATS_STATEFULSET" "$peer" \\
            "$MOTHERSHIP_NATS_SERVICE" "$POD_NAMESPACE"
        fi
        peer=$((peer + 1))
      done
      printf '  ]\\n}\\n'
    fi
  } > @NATS_CONFIG@
fi
"""

_PRIVILEGED_PORT = """
# The API port is below 1025: the kube-apiserver binary k0s unpacks needs the capability
# to bind it. k0s unpacks it after start, so keep trying in the background.
apk add --no-cache libcap >/dev/null || echo "mothership: could not install libcap" >&2
( until setcap cap_net_bind_service=+ep /var/lib/k0s/bin/kube-apiserver 2>/dev/null; do
    sleep 1
  done ) &
"""


def entrypoint_script(spec: ClusterSpec) -> str:
    script = (
        _ENTRYPOINT_HEAD.replace("@ENV_AWK@", ENV_VALUE_AWK)
        .replace("@SWAPS@", "\n".join(f"swap {v} {p}" for v, p in ENV_PLACEHOLDERS.items()))
        .replace("@NATS_CONFIG@", NATS_CONFIG_PATH)
        .replace("@NATS_STORE@", NATS_STORE_DIR)
        .replace("@NATS_CLIENT_PORT@", str(NATS_CLIENT_PORT))
        .replace("@NATS_CLUSTER_PORT@", str(NATS_CLUSTER_PORT))
    )
    if spec.service.api_port <= 1024:
        script += _PRIVILEGED_PORT
    # Each flag is one argument, as the API documents; quoting keeps the shell from
    # splitting or expanding what the user wrote.
    flags = " ".join(shlex.quote(flag) for flag in controller_flags(spec))
    return f"{script}\nexec k0s controller {flags}\n"


def entrypoint_config_map(cluster: Cluster) -> dict[str, Any]:
    cluster_name, _ = identity(cluster)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cluster, names.entrypoint_config_map(cluster_name), "entrypoint"),
        "data": {ENTRYPOINT_KEY: entrypoint_script(cluster.spec)},
    }


# --- manifests deployed into the hosted cluster ---------------------------------------------


def endpoint_config_map(cluster: Cluster, facts: Facts) -> dict[str, Any] | None:
    """A kube-system ConfigMap telling in-cluster tools (e.g. Cilium) where the API is.

    Only once the address is known: an empty one would be worse than none.
    """
    address = external_address(cluster.spec, facts)
    if not address:
        return None
    cluster_name, _ = identity(cluster)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "control-plane-endpoint", "namespace": "kube-system"},
        "data": {"apiServerHost": address, "apiServerPort": str(cluster.spec.service.api_port)},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cluster, names.endpoint_config_map(cluster_name), "control-plane"),
        "data": {"endpoint.yaml": _dump(manifest)},
    }


def telemetry_config_map(cluster: Cluster) -> dict[str, Any]:
    """Tells k0s telemetry (when the user leaves it on) which provider runs the cluster."""
    cluster_name, _ = identity(cluster)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "k0s-telemetry", "namespace": "kube-system"},
        "data": {"provider": TELEMETRY_PROVIDER},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cluster, names.telemetry_config_map(cluster_name), "telemetry"),
        "data": {"configmap.yaml": _dump(manifest)},
    }


# --- monitoring -------------------------------------------------------------------------------

PROMETHEUS_PORT = 9090
METRICS_PROXY_PORT = 8090

# nginx serves Prometheus' federation endpoint as /metrics, so the management cluster's
# Prometheus scrapes the sidecar like any pod. The query (all series with a job) is
# pre-encoded: nginx passes arguments through untouched, and a trailing "?" stops it from
# appending the caller's own.
_NGINX_CONF = """worker_processes 1;
error_log /dev/stderr warn;
pid /tmp/nginx.pid;

events {
  worker_connections 1024;
}

http {
  access_log off;
  server {
    listen @PROXY_PORT@;
    location = /metrics {
      rewrite ^ /federate?match%5B%5D=%7Bjob%21%3D%22%22%7D? break;
      proxy_pass http://127.0.0.1:@PROMETHEUS_PORT@;
    }
  }
}
"""


def prometheus_config(cluster: Cluster) -> dict[str, Any]:
    """Scrape the control plane components over localhost, and etcd when we run it."""
    cluster_name, _ = identity(cluster)
    spec = cluster.spec

    def target(address: str, component: str) -> dict[str, Any]:
        return {
            "targets": [address],
            "labels": {"component": component, "k0smotron_cluster": cluster_name},
        }

    jobs: list[dict[str, Any]] = [
        {
            "job_name": "k0smotron_cluster_metrics",
            "scheme": "https",
            "tls_config": {
                # Components serve certificates for their own names, not for localhost.
                "insecure_skip_verify": True,
                "cert_file": f"{PKI_DIR}/admin.crt",
                "key_file": f"{PKI_DIR}/admin.key",
            },
            "static_configs": [
                target(f"localhost:{spec.service.api_port}", "kube-apiserver"),
                target("localhost:10259", "kube-scheduler"),
                target("localhost:10257", "kube-controller-manager"),
            ],
        }
    ]
    if spec.storage.managed_etcd:
        jobs.append(
            {
                "job_name": "k0smotron_etcd_metrics",
                "scheme": "https",
                "tls_config": {
                    "insecure_skip_verify": True,
                    "cert_file": f"{PKI_DIR}/etcd-ca.crt",
                    "key_file": f"{PKI_DIR}/etcd-ca.key",
                },
                "static_configs": [target(f"{names.etcd(cluster_name)}:2379", "etcd")],
            }
        )
    return {
        "global": {"scrape_interval": "10s", "evaluation_interval": "10s"},
        "scrape_configs": jobs,
    }


def monitoring_config_map(cluster: Cluster) -> dict[str, Any] | None:
    if not cluster.spec.monitoring.enabled:
        return None
    cluster_name, _ = identity(cluster)
    nginx = _NGINX_CONF.replace("@PROXY_PORT@", str(METRICS_PROXY_PORT)).replace(
        "@PROMETHEUS_PORT@", str(PROMETHEUS_PORT)
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cluster, names.monitoring_config_map(cluster_name), "monitoring"),
        "data": {"prometheus.yml": _dump(prometheus_config(cluster)), "nginx.conf": nginx},
    }


def render_config_maps(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    """Every ConfigMap of the control plane itself (ingress ones live in ingress.py)."""
    maybe = [
        config_config_map(cluster, facts),
        entrypoint_config_map(cluster),
        telemetry_config_map(cluster),
        endpoint_config_map(cluster, facts),
        monitoring_config_map(cluster),
    ]
    return [obj for obj in maybe if obj is not None]
