"""The NetworkPolicies rendered per Cluster: who may reach a control plane and its etcd.

The policies only isolate if their selectors match the pods the other modules render, so
the tests check them against the rendered workloads (pod template labels, container
ports, Service ports) rather than against copies of the label values.
"""

from __future__ import annotations

from typing import Any

import pytest

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.controllers import children
from mothership.install import manifests
from mothership.render import configmaps, etcd
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts
from mothership.render.network_policies import render_network_policies

NS = "tenants"
FACTS = Facts(external_address="192.0.2.1")


def make(spec: dict[str, Any] | None = None, name: str = "demo") -> Cluster:
    return Cluster.model_validate({"metadata": {"name": name, "namespace": NS}, "spec": spec or {}})


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are rendered"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def pod_templates(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod template rendered (StatefulSets and the defrag CronJob), by owner name."""
    out = {}
    for obj in objects:
        if obj["kind"] == "StatefulSet":
            out[obj["metadata"]["name"]] = obj["spec"]["template"]
        elif obj["kind"] == "CronJob":
            out[obj["metadata"]["name"]] = obj["spec"]["jobTemplate"]["spec"]["template"]
    return out


def allowed(policy: dict[str, Any], port: int, source: dict[str, str] | None) -> bool:
    """Whether `policy` lets a pod with labels `source` (None: any address) in on `port`."""
    for rule in policy["spec"]["ingress"]:
        if port not in [p["port"] for p in rule["ports"]]:
            continue
        peers = rule.get("from")
        if peers is None:
            return True
        if source is not None and any(selects(p["podSelector"], source) for p in peers):
            return True
    return False


SPECS = {
    "k0s-etcd": {},
    "k0s-etcd-defrag-monitoring": {
        "replicas": 3,
        "monitoring": {"enabled": True},
        "storage": {"type": "etcd", "etcd": {"defragJob": {"enabled": True}}},
    },
    "k0s-kine": {"storage": {"type": "kine"}},
    "k0s-nats": {"replicas": 3, "storage": {"type": "nats"}},
    "k0s-nodeport": {"service": {"type": "NodePort", "apiPort": 31443, "konnectivityPort": 31132}},
    "kubernetes-etcd": {"distribution": "kubernetes", "version": "v1.35.4"},
    "kubernetes-nats-monitoring": {
        "distribution": "kubernetes",
        "version": "v1.35.4",
        "replicas": 3,
        "monitoring": {"enabled": True},
        "storage": {"type": "nats"},
    },
}


@pytest.fixture(params=sorted(SPECS))
def rendered(request: pytest.FixtureRequest) -> tuple[Cluster, list[dict[str, Any]]]:
    cluster = make(SPECS[request.param])
    return cluster, render_cluster(cluster, FACTS)


def test_every_cluster_guards_its_control_plane_and_its_etcd(
    rendered: tuple[Cluster, list[dict[str, Any]]],
) -> None:
    cluster, objects = rendered
    policies = of_kind(objects, "NetworkPolicy")
    templates = pod_templates(objects)
    expected = {"kmc-demo"} | ({"kmc-demo-etcd"} if cluster.spec.storage.type == "etcd" else set())
    assert set(policies) == expected
    for name, policy in policies.items():
        assert policy["apiVersion"] == "networking.k8s.io/v1"
        assert policy["metadata"]["namespace"] == NS
        assert policy["metadata"]["labels"]["cluster"] == "demo"
        # Ingress only: egress (DNS, external datastores, workers) stays open.
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        # Each guards exactly the pods of the workload it is named after.
        assert selects(policy["spec"]["podSelector"], templates[name]["metadata"]["labels"])
        others = [t for n, t in templates.items() if n != name]
        assert not any(
            selects(policy["spec"]["podSelector"], t["metadata"]["labels"]) for t in others
        )


def test_peers_are_pods_of_the_same_cluster_in_its_namespace_only(
    rendered: tuple[Cluster, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    for policy in of_kind(objects, "NetworkPolicy").values():
        for rule in policy["spec"]["ingress"]:
            for peer in rule.get("from", []):
                # No namespaceSelector (the policy's namespace) and no ipBlock.
                assert set(peer) == {"podSelector"}
                assert peer["podSelector"]["matchLabels"]["cluster"] == "demo"
            assert all(p["protocol"] == "TCP" for p in rule["ports"])


def test_what_the_services_forward_to_is_open_and_nothing_else_is(
    rendered: tuple[Cluster, list[dict[str, Any]]],
) -> None:
    cluster, objects = rendered
    policy = of_kind(objects, "NetworkPolicy")["kmc-demo"]
    labels = pod_templates(objects)["kmc-demo"]["metadata"]["labels"]
    spec = cluster.spec
    public = {spec.service.api_port, spec.service.konnectivity_port}
    if spec.monitoring.enabled:
        public.add(configmaps.METRICS_PROXY_PORT)  # scraped by pod annotation
    for service in of_kind(objects, "Service").values():
        if not selects({"matchLabels": service["spec"]["selector"]}, labels):
            continue
        for port in service["spec"]["ports"]:
            # NATS routes are for the members only; every other Service port is public.
            peers_only = port["targetPort"] == configmaps.NATS_CLUSTER_PORT
            assert allowed(policy, port["targetPort"], labels)
            assert allowed(policy, port["targetPort"], None) is not peers_only
    container_ports = {
        p["containerPort"]
        for c in pod_templates(objects)["kmc-demo"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    stranger = {"app": "k0smotron", "cluster": "other", "component": "control-plane"}
    for port in container_ports | {9443, 10257, 10259, 8133, 8134, configmaps.PROMETHEUS_PORT}:
        assert allowed(policy, port, None) is (port in public), port
        assert allowed(policy, port, stranger) is (port in public), port


def test_etcd_answers_its_own_cluster_and_no_one_else(
    rendered: tuple[Cluster, list[dict[str, Any]]],
) -> None:
    cluster, objects = rendered
    if cluster.spec.storage.type != "etcd":
        pytest.skip("no managed etcd")
    policy = of_kind(objects, "NetworkPolicy")["kmc-demo-etcd"]
    templates = pod_templates(objects)
    control_plane = templates["kmc-demo"]["metadata"]["labels"]
    member = templates["kmc-demo-etcd"]["metadata"]["labels"]
    client, peer = etcd.CLIENT_PORT, etcd.PEER_PORT
    assert allowed(policy, client, control_plane)
    assert not allowed(policy, peer, control_plane)
    assert allowed(policy, client, member)  # a joining member's `etcdctl member add`
    assert allowed(policy, peer, member)
    if "kmc-demo-defrag" in templates:
        defrag = templates["kmc-demo-defrag"]["metadata"]["labels"]
        assert allowed(policy, client, defrag)
        assert not allowed(policy, peer, defrag)
    for port in (client, peer):
        assert not allowed(policy, port, None)
        for labels in (control_plane, member):
            assert not allowed(policy, port, {**labels, "cluster": "other"})
    # The etcd Service's ports are all covered.
    service = of_kind(objects, "Service")["kmc-demo-etcd"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {client, peer}


def test_two_clusters_in_one_namespace_do_not_let_each_other_in() -> None:
    a = render_network_policies(make(name="a"))
    b_objects = render_cluster(make(name="b"), FACTS)
    b_pods = [t["metadata"]["labels"] for t in pod_templates(b_objects).values()]
    for policy in a:
        for rule in policy["spec"]["ingress"]:
            for peer in rule.get("from", []):
                assert not any(selects(peer["podSelector"], labels) for labels in b_pods)


def test_policies_come_before_the_pods_they_guard() -> None:
    objects = render_cluster(make({"storage": {"etcd": {"defragJob": {"enabled": True}}}}), FACTS)
    kinds = [o["kind"] for o in objects]
    first_workload = min(kinds.index("StatefulSet"), kinds.index("CronJob"))
    assert max(i for i, k in enumerate(kinds) if k == "NetworkPolicy") < first_workload


def test_spec_patches_can_open_more_ports() -> None:
    patch = {
        "target": {"kind": "NetworkPolicy", "component": "etcd"},
        "patch": {
            "type": "json",
            "content": '[{"op": "add", "path": "/spec/ingress/-", "value": '
            '{"ports": [{"protocol": "TCP", "port": 2381}]}}]',
        },
    }
    objects = render_cluster(make({"patches": [patch]}), FACTS)
    policies = of_kind(objects, "NetworkPolicy")
    assert allowed(policies["kmc-demo-etcd"], 2381, None)
    assert not allowed(policies["kmc-demo"], 2381, None)


def test_the_operator_may_watch_and_apply_every_kind_it_owns() -> None:
    """A kind the operator watches but may not list answers 403, and the watch then
    treats it as empty: every reconcile would re-create the policies, and fail to."""
    [role] = [
        o
        for o in manifests.objects(None)
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == manifests.TENANTS_ROLE
    ]
    for kind in children.KINDS:
        group = "" if kind.api == "api/v1" else kind.api.split("/")[1]  # apis/<group>/<v>
        verbs = {
            verb
            for rule in role["rules"]
            if group in rule["apiGroups"] and kind.plural in rule["resources"]
            for verb in rule["verbs"]
        }
        assert verbs >= {"get", "list", "watch", "create", "patch"}, kind.kind
