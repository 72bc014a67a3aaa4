"""The kubernetes distribution's control plane and the managed etcd meet the restricted Pod
Security Standard; where a component cannot (hostPath, k0s), it keeps running as root.

`restricted_violations` is a small pure reading of the standard's rules
(https://kubernetes.io/docs/concepts/security/pod-security-standards/), enough to judge
the pods we render; the real-node tests run the same pods in namespaces that enforce it.
"""

from __future__ import annotations

from typing import Any

import pytest

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import etcd, statefulset
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts

NS = "tenants"
FACTS = Facts(external_address="10.96.5.5", service_cluster_ips=("10.96.5.5",))

# Volume types the restricted profile allows.
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What in a pod spec the restricted profile refuses (baseline rules included)."""
    out: list[str] = []
    pod_sc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"pod: {key}")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"volume {volume['name']}: {sorted(kinds - ALLOWED_VOLUMES)}")
    if pod_sc.get("runAsUser") == 0:
        out.append("pod: runAsUser 0")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_OK:
        out.append(f"pod: seccomp {pod_seccomp}")
    for c in [*(pod.get("initContainers") or []), *pod["containers"]]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities not dropped")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: capabilities added")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            out.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_OK:
            out.append(f"{name}: seccomp {seccomp}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{name}: hostPort")
    return out


def make(**spec: Any) -> Cluster:
    return Cluster.model_validate(
        {
            "metadata": {"name": "demo", "namespace": NS},
            "spec": {"distribution": "kubernetes", "version": "v1.35.4", **spec},
        }
    )


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def pods(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod template rendered, by the object holding it."""
    out = {}
    for obj in objs:
        if obj["kind"] == "StatefulSet":
            out[obj["metadata"]["name"]] = obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            job = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            out[obj["metadata"]["name"]] = job
    return out


PVC = {
    "type": "pvc",
    "persistentVolumeClaim": {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    },
}

KINE = {"type": "kine"}
RESTRICTED_SPECS = {
    "default-etcd": {},
    "kine-sqlite-emptydir": {"storage": KINE},
    "kine-sqlite-pvc": {"storage": KINE, "persistence": PVC},
    "kine-url-secret": {"storage": {"type": "kine", "kine": {"dataSourceSecretName": "db"}}},
    "nats-ha": {"replicas": 3, "storage": {"type": "nats"}},
    "etcd-ha-monitoring-defrag": {
        "replicas": 3,
        "monitoring": {"enabled": True},
        "storage": {"type": "etcd", "etcd": {"defragJob": {"enabled": True}}},
    },
    "kine-monitoring-pvc": {"storage": KINE, "monitoring": {"enabled": True}, "persistence": PVC},
    "user-mounts-from-secrets": {
        "mounts": [{"path": "/etc/audit", "secret": {"secretName": "audit", "defaultMode": 0o600}}]
    },
}


@pytest.mark.parametrize("case", RESTRICTED_SPECS)
def test_every_pod_meets_the_restricted_profile(case: str) -> None:
    rendered = pods(render_cluster(make(**RESTRICTED_SPECS[case]), FACTS))
    assert "kmc-demo" in rendered
    for name, pod in rendered.items():
        assert restricted_violations(pod) == [], name
        assert pod["automountServiceAccountToken"] is False, name


def test_control_plane_runs_as_one_non_root_id_that_owns_its_volumes() -> None:
    """One uid, gid and fsGroup: kine's data dir and konnectivity's socket dir (emptyDir or
    claim) are the group's and group-writable, Secrets group-readable whatever their mode."""
    pod = pods(render_cluster(make(storage=KINE, persistence=PVC), FACTS))["kmc-demo"]
    uid = statefulset.NON_ROOT_ID
    assert uid != 0
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_etcd_runs_as_its_images_user_with_the_group_k0smotron_gave_its_claims() -> None:
    objs = render_cluster(make(storage={"type": "etcd"}), FACTS)
    pod = find(objs, "StatefulSet", "kmc-demo-etcd")["spec"]["template"]["spec"]
    sc = pod["securityContext"]
    assert sc["runAsUser"] == sc["runAsGroup"] == sc["fsGroup"] == etcd.USER_ID == 1001
    # The k0s distribution's etcd is the same StatefulSet, so it is restricted too.
    k0s = Cluster.model_validate(
        {"metadata": {"name": "demo", "namespace": NS}, "spec": {"storage": {"type": "etcd"}}}
    )
    k0s_pods = pods(render_cluster(k0s, Facts()))
    assert restricted_violations(k0s_pods["kmc-demo-etcd"]) == []


def test_monitoring_sidecars_of_a_non_root_pod_write_to_emptydirs() -> None:
    """Prometheus' TSDB and nginx' temp dirs are root's in their images."""
    cluster = make(storage=KINE, monitoring={"enabled": True})
    pod = pods(render_cluster(cluster, FACTS))["kmc-demo"]
    agent, proxy = (
        next(c for c in pod["containers"] if c["name"] == name)
        for name in ("monitoring-agent", "monitoring-proxy")
    )
    assert f"--storage.tsdb.path={statefulset.MONITORING_TSDB_DIR}" in agent["args"]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    tsdb = {m["mountPath"]: m["name"] for m in agent["volumeMounts"]}
    assert tsdb[statefulset.MONITORING_TSDB_DIR] in empty_dirs
    temp = {m["mountPath"]: m["name"] for m in proxy["volumeMounts"]}
    for path in statefulset.NGINX_TEMP_DIRS:
        assert temp[path] in empty_dirs


@pytest.mark.parametrize(
    "spec",
    [
        {"storage": KINE, "persistence": {"type": "hostPath", "hostPath": "/var/lib/demo"}},
        {"mounts": [{"path": "/var/log/audit", "hostPath": {"path": "/var/log/audit"}}]},
    ],
    ids=["persistence", "user-mount"],
)
def test_a_hostpath_keeps_the_pod_root_with_what_root_can_spare(spec: dict[str, Any]) -> None:
    """No fsGroup on a hostPath: a non-root kine (or API server) could not write there."""
    pod = pods(render_cluster(make(**spec), FACTS))["kmc-demo"]
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    for c in pod["containers"]:
        assert c["securityContext"] == {"allowPrivilegeEscalation": False}, c["name"]
    violations = restricted_violations(pod)
    assert any("hostPath" in v for v in violations)
    assert any("runAsNonRoot" in v for v in violations)


def test_k0s_control_plane_is_left_as_it_was() -> None:
    """k0s runs as root (it writes its own data dir, runs its components as it likes)."""
    k0s = Cluster.model_validate({"metadata": {"name": "demo", "namespace": NS}, "spec": {}})
    pod = pods(render_cluster(k0s, Facts()))["kmc-demo"]
    assert "securityContext" not in pod
    for c in [*pod["initContainers"], *pod["containers"]]:
        assert "securityContext" not in c, c["name"]


def test_user_patches_apply_on_top() -> None:
    """spec.patches come after rendering: a user who needs another uid (an image built for
    one) sets it, and the rest of the restricted context stays."""
    patch = (
        "spec:\n  template:\n    spec:\n      securityContext:\n"
        "        runAsUser: 2000\n        runAsGroup: 2000\n        fsGroup: 2000\n"
    )
    cluster = make(
        patches=[
            {
                "target": {"kind": "StatefulSet", "component": "control-plane"},
                "patch": {"type": "strategic", "content": patch},
            }
        ]
    )
    pod = pods(render_cluster(cluster, FACTS))["kmc-demo"]
    assert pod["securityContext"]["runAsUser"] == 2000
    assert pod["securityContext"]["fsGroup"] == 2000
    assert restricted_violations(pod) == []
