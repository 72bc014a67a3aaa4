"""NetworkPolicy semantics as the local mothership's iptables chains (netpol_rules)."""

from __future__ import annotations

from typing import Any

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render.network_policies import render_network_policies
from mothership.testenv import netpol_rules as r

WEB = r.PodInfo("a", "web", "10.88.0.10", {"app": "web"}, (("http", 8080, "TCP"),), "node1")
DB = r.PodInfo("a", "db", "10.88.0.11", {"app": "db"}, (), "node1")
OTHER = r.PodInfo("b", "client", "10.88.0.20", {"app": "client"}, (), "node1")
REMOTE = r.PodInfo("a", "far", "10.88.1.5", {"app": "web"}, (), "node2")
NAMESPACES = {"a": {"team": "a"}, "b": {"team": "b"}}


def policy(ns: str, spec: dict[str, Any], name: str = "p") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def world(*policies: dict[str, Any], pods: tuple[r.PodInfo, ...] = (WEB, DB, OTHER)) -> r.World:
    return r.World(tuple(policies), pods, NAMESPACES)


def chain(ruleset: r.Ruleset, direction: str, pod: r.PodInfo) -> list[str]:
    return ruleset.chains[r.chain_name(direction, pod)]


def test_without_policies_nothing_is_isolated() -> None:
    out = r.render(world())
    assert list(out.chains) == [r.TOP]
    assert out.chains[r.TOP] == ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]


def test_a_policy_without_rules_closes_the_selected_pods_only() -> None:
    out = r.render(world(policy("a", {"podSelector": {"matchLabels": {"app": "db"}}})))
    assert f"-d {DB.ip}/32 -j {r.chain_name('Ingress', DB)}" in out.chains[r.TOP]
    assert r.chain_name("Ingress", WEB) not in out.chains
    rules = chain(out, "Ingress", DB)
    assert rules[0] == f"-s {DB.ip}/32 -j RETURN", "a pod may always reach itself"
    assert rules[-2:] == ["-p tcp -j REJECT --reject-with tcp-reset", "-j REJECT"]
    assert len(rules) == 3


def test_pod_peers_are_in_the_policys_namespace_unless_a_namespace_selector_says_otherwise() -> (
    None
):
    only_web = policy("a", {"podSelector": {"matchLabels": {"app": "db"}},
                            "ingress": [{"from": [{"podSelector": {}}]}]})  # fmt: skip
    rules = chain(r.render(world(only_web)), "Ingress", DB)
    assert f"-s {WEB.ip}/32 -j RETURN" in rules
    assert f"-s {OTHER.ip}/32 -j RETURN" not in rules
    from_b = policy("a", {"podSelector": {"matchLabels": {"app": "db"}},
                          "ingress": [{"from": [{"namespaceSelector": {
                              "matchExpressions": [{"key": "team", "operator": "In",
                                                    "values": ["b"]}]}}]}]})  # fmt: skip
    rules = chain(r.render(world(from_b)), "Ingress", DB)
    assert f"-s {OTHER.ip}/32 -j RETURN" in rules
    assert f"-s {WEB.ip}/32 -j RETURN" not in rules


def test_ports_numbers_ranges_names_and_protocols() -> None:
    spec = {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "ports": [
                    {"port": 443},
                    {"port": 30000, "endPort": 30010, "protocol": "UDP"},
                    {"port": "http"},
                    {"port": "no-such-port"},
                    {"protocol": "SCTP"},
                ]
            }
        ],
    }
    rules = chain(r.render(world(policy("a", spec))), "Ingress", WEB)
    assert "-p tcp -m tcp --dport 443 -j RETURN" in rules
    assert "-p udp -m udp --dport 30000:30010 -j RETURN" in rules
    assert "-p tcp -m tcp --dport 8080 -j RETURN" in rules
    assert "-p sctp -j RETURN" in rules
    assert len(rules) == 1 + 4 + 2, rules


def test_ip_blocks_with_exceptions_become_the_networks_left() -> None:
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
    }
    out = r.render(world(policy("b", spec)))
    rules = chain(out, "Egress", OTHER)
    allowed = [line.split()[1] for line in rules[1:-2]]
    assert "10.1.0.0/16" not in allowed and "10.0.0.0/16" in allowed and "10.128.0.0/9" in allowed
    covered = sum(2 ** (32 - int(n.split("/")[1])) for n in allowed)
    assert covered == 2**24 - 2**16
    assert f"-s {OTHER.ip}/32 -j {r.chain_name('Egress', OTHER)}" in out.chains[r.TOP]
    assert r.chain_name("Ingress", OTHER) not in out.chains, "egress only"


def test_egress_rules_make_egress_isolation_by_default_and_named_ports_resolve_on_the_peer() -> (
    None
):
    spec = {
        "podSelector": {"matchLabels": {"app": "client"}},
        "egress": [
            {
                "to": [{"namespaceSelector": {"matchLabels": {"team": "a"}},
                        "podSelector": {"matchLabels": {"app": "web"}}}],
                "ports": [{"port": "http"}],
            }
        ],
    }  # fmt: skip
    out = r.render(world(policy("b", spec)))
    assert r.chain_name("Ingress", OTHER) in out.chains, "Ingress is always a default type"
    rules = chain(out, "Egress", OTHER)
    assert f"-d {WEB.ip}/32 -p tcp -m tcp --dport 8080 -j RETURN" in rules
    assert not any(DB.ip in line for line in rules)


def test_only_the_nodes_own_pods_get_chains_but_every_pod_is_a_peer() -> None:
    spec = {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}  # fmt: skip
    selects_far = policy("a", {"podSelector": {"matchLabels": {"app": "web"}}}, name="q")
    out = r.render(world(policy("a", spec), selects_far, pods=(WEB, DB, REMOTE)), node="node1")
    assert f"-s {REMOTE.ip}/32 -j RETURN" in chain(out, "Ingress", DB)
    assert r.chain_name("Ingress", REMOTE) not in out.chains
    assert r.chain_name("Ingress", WEB) in out.chains


def test_selectors() -> None:
    labels = {"a": "1", "b": "2"}
    assert r.selects({}, labels)
    assert not r.selects(None, labels)
    assert r.selects({"matchLabels": {"a": "1"}}, labels)
    assert not r.selects({"matchLabels": {"a": "2"}}, labels)
    assert r.selects({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]}, labels)
    assert r.selects({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, labels)
    assert r.selects({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["3"]}]},
                     labels)  # fmt: skip
    assert not r.selects({"matchExpressions": [{"key": "c", "operator": "In", "values": ["1"]}]},
                         labels)  # fmt: skip


def test_pods_policies_do_not_apply_to() -> None:
    base = {"metadata": {"name": "x", "namespace": "a"}, "spec": {"nodeName": "n"},
            "status": {"podIP": "10.88.0.3", "phase": "Running"}}  # fmt: skip
    info = r.pod_info(base)
    assert info is not None and info.node == "n" and info.ip == "10.88.0.3"
    assert r.pod_info({**base, "spec": {"hostNetwork": True}}) is None
    assert r.pod_info({**base, "status": {"podIP": "10.88.0.3", "phase": "Succeeded"}}) is None
    assert r.pod_info({**base, "status": {"phase": "Pending"}}) is None
    assert r.pod_info({**base, "status": {"podIP": "fd00::3"}}) is None


def test_restore_text_refills_our_chains_and_deletes_stale_ones() -> None:
    out = r.render(world(policy("a", {"podSelector": {}})))
    text = out.restore_text(["MSNP-I-GONE", r.TOP])
    lines = text.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert ":MSNP-I-GONE - [0:0]" in lines and lines[-2] == "-X MSNP-I-GONE"
    assert lines.count(f":{r.TOP} - [0:0]") == 1
    assert all(len(name) <= 28 for name in out.chains), "iptables chain names are short"
    empty = r.Ruleset({}).restore_text([r.TOP])
    assert empty.splitlines() == ["*filter", f":{r.TOP} - [0:0]", f"-X {r.TOP}", "COMMIT"]


def test_a_clusters_rendered_policies_close_etcd_to_other_tenants() -> None:
    cluster = Cluster.model_validate(
        {"metadata": {"name": "b", "namespace": "b"},
         "spec": {"distribution": "kubernetes", "storage": {"type": "etcd"}}}
    )  # fmt: skip
    policies = tuple(render_network_policies(cluster))
    cp = r.PodInfo("b", "kmc-b-0", "10.88.0.30",
                   policies[0]["spec"]["podSelector"]["matchLabels"], (), "n")  # fmt: skip
    member = r.PodInfo("b", "kmc-b-etcd-0", "10.88.0.31",
                       policies[1]["spec"]["podSelector"]["matchLabels"], (), "n")  # fmt: skip
    out = r.render(r.World(policies, (cp, member, OTHER), NAMESPACES))
    etcd_rules = chain(out, "Ingress", member)
    assert f"-s {cp.ip}/32 -p tcp -m tcp --dport 2379 -j RETURN" in etcd_rules
    assert not any(OTHER.ip in line for line in etcd_rules)
    api = chain(out, "Ingress", cp)
    assert f"-p tcp -m tcp --dport {cluster.spec.service.api_port} -j RETURN" in api
