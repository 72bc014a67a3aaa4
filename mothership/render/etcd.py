"""The etcd cluster behind a control plane whose storage type is etcd.

etcd runs as its own StatefulSet so control plane pods can come and go (and scale) without
touching quorum. Members are always an odd number: an even count tolerates no more
failures than the odd count below it, yet needs a larger quorum.
"""

from __future__ import annotations

import copy
from typing import Any

from mothership.api.k0smotron.v1beta2 import DEFAULT_ETCD_IMAGE, Cluster
from mothership.render import names, scheduling, statefulset
from mothership.render.facts import Facts, identity, k0s_image, object_meta

COMPONENT = "etcd"
# Defrag pods get their own component: with `etcd` the headless Service (which publishes
# not-ready pods) would hand them out as etcd members.
DEFRAG_COMPONENT = "etcd-defrag"
CLIENT_PORT = 2379
PEER_PORT = 2380
CERT_DIR = "/var/lib/k0s/pki/etcd"
DATA_DIR = "/var/lib/k0s/etcd"
DATA_VOLUME = "etcd-data"
CERTS_VOLUME = "certs"
# The uid, gid and fsGroup of the etcd pods. 1001 is the user etcd's image runs as and the
# fsGroup k0smotron gives these pods, so member data written before (by k0smotron, or by
# an image that ran as root: the kubelet hands the claim to the fsGroup on every mount)
# stays writable. Fixed in the pod so a root image (the local one) runs as it too: the
# restricted Pod Security profile wants a non-root uid the kubelet can check.
USER_ID = 1001
JOIN_MARKER = f"{DATA_DIR}/.join-existing-cluster"
# The founding members, recorded on the StatefulSet (metadata, so changing nothing in the
# pods) when it is first written and reused after: see founding_members.
FOUNDING_ANNOTATION = "mothership.io/etcd-initial-cluster"


def etcd_image(cluster: Cluster, facts: Facts) -> str:
    """The spec's image; else the operator's default (the webhook normally wrote it in)."""
    return cluster.spec.storage.etcd.image or facts.default_etcd_image or DEFAULT_ETCD_IMAGE


def desired_replicas(control_plane_replicas: int) -> int:
    """etcd members for a control plane size: at least one, rounded up to odd."""
    if control_plane_replicas <= 1:
        return 1
    return control_plane_replicas + 1 if control_plane_replicas % 2 == 0 else control_plane_replicas


def replicas(cluster: Cluster, facts: Facts) -> int:
    if facts.etcd_replicas is not None:
        return facts.etcd_replicas
    return desired_replicas(cluster.spec.replicas)


def initial_cluster(cluster_name: str, members: int) -> str:
    """ETCD_INITIAL_CLUSTER: every member by its stable pod DNS name."""
    sts = names.etcd(cluster_name)
    return ",".join(f"{sts}-{i}=https://{sts}-{i}.{sts}:{PEER_PORT}" for i in range(members))


def founding_members(cluster: Cluster, facts: Facts) -> str:
    """ETCD_INITIAL_CLUSTER of the pod template: the members that found the cluster together.

    Fixed once the StatefulSet exists (facts.etcd_initial_cluster, read back from its
    annotation). Were it to follow the member count, every growth step would change the
    template and restart the running members one by one while the new one tries to join,
    and a join that finds no quorum must not found a second cluster. A member added later
    starts with the list `etcdctl member add` gives it (the join script keeps it).
    """
    if facts.etcd_initial_cluster:
        return facts.etcd_initial_cluster
    return initial_cluster(identity(cluster)[0], replicas(cluster, facts))


def etcd_service(cluster: Cluster) -> dict[str, Any]:
    """Headless: members and clients address pods by name, and not-ready pods must be
    resolvable so a starting cluster can form quorum at all."""
    cluster_name, _ = identity(cluster)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(cluster, names.etcd(cluster_name), COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": names.selector(cluster_name, COMPONENT),
            "ports": [
                _port("client", CLIENT_PORT),
                _port("peer", PEER_PORT),
            ],
        },
    }


def _port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "protocol": "TCP", "targetPort": port}


def _secret_projection(secret: str, items: dict[str, str]) -> dict[str, Any]:
    return {
        "secret": {
            "name": secret,
            "items": [{"key": key, "path": path} for key, path in items.items()],
        }
    }


def _certs_volume(cluster_name: str, *, peer: bool, leaf_as: str) -> dict[str, Any]:
    # Only the CA certificate: nothing in these pods signs, so the CA key stays out.
    sources = [
        _secret_projection(names.pki_secret(cluster_name, "etcd"), {"tls.crt": "ca.crt"}),
        _secret_projection(
            names.pki_secret(cluster_name, "etcd-server"),
            {"tls.crt": f"{leaf_as}.crt", "tls.key": f"{leaf_as}.key"},
        ),
    ]
    if peer:
        sources.append(
            _secret_projection(
                names.pki_secret(cluster_name, "etcd-peer"),
                {"tls.crt": "peer.crt", "tls.key": "peer.key"},
            )
        )
    return {"name": CERTS_VOLUME, "projected": {"sources": sources}}


_RUN_SCRIPT = f"""# Written by mothership. A member joining a running cluster was registered by the
# init container, which leaves a marker: etcd must then join instead of founding one, with
# the member list the cluster gave it (kept in the marker; empty in older markers).
if [ -f {JOIN_MARKER} ]; then
  . {JOIN_MARKER}
  export ETCD_INITIAL_CLUSTER
  export ETCD_INITIAL_CLUSTER_STATE=existing
else
  export ETCD_INITIAL_CLUSTER_STATE=new
fi
# "$@" are the user's extra flags; coming after ours, they win.
exec etcd \\
  --name="$HOSTNAME" \\
  --listen-client-urls=https://0.0.0.0:{CLIENT_PORT} \\
  --listen-peer-urls=https://0.0.0.0:{PEER_PORT} \\
  --advertise-client-urls="https://$HOSTNAME.$SVC_NAME:{CLIENT_PORT}" \\
  --initial-advertise-peer-urls="https://$HOSTNAME.$SVC_NAME:{PEER_PORT}" \\
  --trusted-ca-file={CERT_DIR}/ca.crt \\
  --cert-file={CERT_DIR}/server.crt \\
  --key-file={CERT_DIR}/server.key \\
  --client-cert-auth=true \\
  --peer-trusted-ca-file={CERT_DIR}/ca.crt \\
  --peer-cert-file={CERT_DIR}/peer.crt \\
  --peer-key-file={CERT_DIR}/peer.key \\
  --peer-client-cert-auth=true \\
  --tls-min-version=TLS1.2 \\
  --enable-pprof=false \\
  --auto-compaction-mode=periodic \\
  --auto-compaction-retention=5m \\
  --snapshot-count=10000 \\
  "$@" \\
  --data-dir={DATA_DIR}
"""

_JOIN_SCRIPT = f"""# Written by mothership. A member without data either founds the cluster (nobody
# answers and it is one of the founding members) or joins a running one, which must learn
# about it before etcd starts. A stale registration under this member's name (its volume
# was lost) is replaced. A member added later never founds: with no answer (no quorum yet)
# it fails, and the kubelet runs this again.
set -eu
if [ -f {DATA_DIR}/member/snap/db ]; then
  echo "member data present, starting as is"
  exit 0
fi
export ETCDCTL_ENDPOINTS="https://$SVC_NAME:{CLIENT_PORT}"
peer_url="https://$HOSTNAME.$SVC_NAME:{PEER_PORT}"
if ! etcdctl member list >/dev/null 2>&1; then
  case ",$ETCD_INITIAL_CLUSTER," in
    *",$HOSTNAME=$peer_url,"*)
      echo "no running cluster answered, founding one"
      exit 0
      ;;
  esac
  echo "no running cluster answered and $HOSTNAME is not a founding member; retrying" >&2
  exit 1
fi
stale=$(etcdctl member list -w simple |
  awk -F', ' -v me="$HOSTNAME" -v url="$peer_url" '$3 == me || $4 == url {{ print $1 }}')
for id in $stale; do
  echo "removing stale registration $id"
  etcdctl member remove "$id"
done
etcdctl member add "$HOSTNAME" --peer-urls="$peer_url" > {JOIN_MARKER}.added
cat {JOIN_MARKER}.added
awk '/^ETCD_INITIAL_CLUSTER=/' {JOIN_MARKER}.added > {JOIN_MARKER}.tmp
mv {JOIN_MARKER}.tmp {JOIN_MARKER}
rm -f {JOIN_MARKER}.added
"""


def _dns_check_script(namespace: str) -> str:
    return (
        "# Peers dial each other by pod DNS name, which appears a little after the pod.\n"
        f'name="$HOSTNAME.$SVC_NAME.{namespace}.svc"\n'
        "tries=0\n"
        'until getent hosts "$name" >/dev/null; do\n'
        "  tries=$((tries + 1))\n"
        '  if [ "$tries" -ge 90 ]; then echo "$name does not resolve" >&2; exit 1; fi\n'
        "  sleep 2\n"
        "done\n"
    )


def _dns_check_image(cluster: Cluster, facts: Facts) -> str:
    """k0s clusters run the check with their k0s image (k0smotron's choice); the kubernetes
    distribution has no such image and uses the etcd image, which has a shell."""
    if cluster.spec.distribution == "kubernetes":
        return etcd_image(cluster, facts)
    return k0s_image(cluster.spec, facts)


def etcd_statefulset(cluster: Cluster, facts: Facts) -> dict[str, Any]:
    cluster_name, namespace = identity(cluster)
    spec = cluster.spec
    etcd = spec.storage.etcd
    service = names.etcd(cluster_name)
    members = replicas(cluster, facts)
    founding = founding_members(cluster, facts)
    cert_env = [
        {"name": "ETCDCTL_CACERT", "value": f"{CERT_DIR}/ca.crt"},
        {"name": "ETCDCTL_CERT", "value": f"{CERT_DIR}/server.crt"},
        {"name": "ETCDCTL_KEY", "value": f"{CERT_DIR}/server.key"},
    ]
    mounts = [
        {"name": CERTS_VOLUME, "mountPath": CERT_DIR},
        {"name": DATA_VOLUME, "mountPath": DATA_DIR},
    ]
    image = etcd_image(cluster, facts)
    etcd_container: dict[str, Any] = {
        "name": "etcd",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash"],
        "args": ["-c", _RUN_SCRIPT, "etcd", *(etcd.args or [])],
        "env": [
            {"name": "SVC_NAME", "value": service},
            {"name": "ETCD_INITIAL_CLUSTER", "value": founding},
            # The probe asks this member, not the Service: a member that cannot serve
            # must not count as ready while the cluster grows one member at a time.
            {"name": "ETCDCTL_ENDPOINTS", "value": f"https://127.0.0.1:{CLIENT_PORT}"},
            *copy.deepcopy(cert_env),
        ],
        "ports": [
            {"name": "client", "containerPort": CLIENT_PORT, "protocol": "TCP"},
            {"name": "peer", "containerPort": PEER_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"exec": {"command": ["etcdctl", "endpoint", "health"]}},
        "volumeMounts": copy.deepcopy(mounts),
    }
    if etcd.resources:
        etcd_container["resources"] = copy.deepcopy(etcd.resources)

    init_containers = [
        {
            "name": "dns-check",
            "image": facts.etcd_dns_check_image or _dns_check_image(cluster, facts),
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/sh", "-c"],
            "args": [_dns_check_script(namespace)],
            "env": [{"name": "SVC_NAME", "value": service}],
        },
        {
            "name": "init",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", "-c"],
            "args": [_JOIN_SCRIPT],
            "env": [
                {"name": "SVC_NAME", "value": service},
                {"name": "ETCD_INITIAL_CLUSTER", "value": founding},
                *copy.deepcopy(cert_env),
            ],
            "volumeMounts": copy.deepcopy(mounts),
        },
    ]

    # Restricted, like the kubernetes distribution's pods: the scripts and etcd write only
    # the claim, read the projected certificates and listen on unprivileged ports.
    pod_security, container_security = statefulset.restricted_security(USER_ID)
    for c in [*init_containers, etcd_container]:
        c["securityContext"] = copy.deepcopy(container_security)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "affinity": scheduling.spread_affinity(cluster_name, COMPONENT),
        "securityContext": pod_security,
        "initContainers": init_containers,
        "containers": [etcd_container],
        "volumes": [_certs_volume(cluster_name, peer=True, leaf_as="server")],
    }
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    if spec.topology_spread_constraints:
        pod_spec["topologySpreadConstraints"] = copy.deepcopy(spec.topology_spread_constraints)

    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": etcd.persistence.size or "1Gi"}},
    }
    if etcd.persistence.storage_class:
        claim_spec["storageClassName"] = etcd.persistence.storage_class

    sts_spec: dict[str, Any] = {
        "replicas": members,
        "serviceName": service,
        # Founding members must all start together; they wait for each other's quorum.
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": names.selector(cluster_name, COMPONENT)},
        "template": {
            "metadata": {"labels": names.labels(cluster_name, COMPONENT)},
            "spec": pod_spec,
        },
        "volumeClaimTemplates": [{"metadata": {"name": DATA_VOLUME}, "spec": claim_spec}],
    }
    if etcd.auto_delete_pvcs:
        sts_spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(
            cluster, service, COMPONENT, annotations={FOUNDING_ANNOTATION: founding}
        ),
        "spec": sts_spec,
    }


def defrag_cronjob(cluster: Cluster) -> dict[str, Any]:
    """Periodic etcd-defrag over all members; Forbid, because two runs would fight."""
    cluster_name, _ = identity(cluster)
    job = cluster.spec.storage.etcd.defrag_job
    container: dict[str, Any] = {
        "name": "etcd-defrag",
        "image": job.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            f"--endpoints=https://{names.etcd(cluster_name)}:{CLIENT_PORT}",
            f"--cacert={CERT_DIR}/ca.crt",
            f"--cert={CERT_DIR}/client.crt",
            f"--key={CERT_DIR}/client.key",
            "--cluster",
            "--defrag-rule",
            job.rule,
        ],
        "volumeMounts": [{"name": CERTS_VOLUME, "mountPath": CERT_DIR}],
    }
    pod_security, container_security = statefulset.restricted_security(USER_ID)
    container["securityContext"] = container_security
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": object_meta(cluster, names.etcd_defrag(cluster_name), COMPONENT),
        "spec": {
            "schedule": job.schedule,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": {"labels": names.labels(cluster_name, DEFRAG_COMPONENT)},
                        "spec": {
                            "automountServiceAccountToken": False,
                            # It only reads the projected certificates and dials etcd.
                            "securityContext": pod_security,
                            "restartPolicy": "OnFailure",
                            "containers": [container],
                            "volumes": [_certs_volume(cluster_name, peer=False, leaf_as="client")],
                        },
                    }
                }
            },
        },
    }


def render_etcd(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    """Service, StatefulSet and (when enabled) defrag CronJob; nothing for kine or NATS."""
    if not cluster.spec.storage.managed_etcd:
        return []
    out = [etcd_service(cluster), etcd_statefulset(cluster, facts)]
    if cluster.spec.storage.etcd.defrag_job.enabled:
        out.append(defrag_cronjob(cluster))
    return out
