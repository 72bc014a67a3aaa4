"""NetworkPolicies as iptables rules for the local mothership's bridge network (pure).

The real node's pods sit on one Linux bridge (the CNI bridge plugin), which enforces no
NetworkPolicy: every Cluster's rendered policies (render/network_policies.py) would be
words only. With `br_netfilter` (which kube-proxy needs anyway) bridged pod traffic
passes the filter table's FORWARD chain, so rules there can enforce the NetworkPolicy
API as a policy-enforcing CNI would. This module turns the API objects into those rules;
`netpol.py` applies them and follows changes.

What is enforced, as the API defines it:

- a pod selected by a policy with Ingress (Egress) in its policyTypes (by default Ingress,
  and Egress when the policy has egress rules) is isolated in that direction; a connection
  is allowed when any rule of any policy selecting the pod allows it, and both ends'
  policies must allow it;
- peers: `podSelector` (in the policy's namespace), `namespaceSelector` (with an optional
  `podSelector`), `ipBlock` with `except`; no `from`/`to` means any peer;
- ports: protocol (TCP by default, UDP, SCTP), a number or a range (`endPort`), or a
  container port's name, resolved on the pod that receives the connection;
- replies of an allowed connection pass (conntrack), and so does a pod's traffic to
  itself; traffic from the node's own processes (the kubelet's probes, the operator and API
  server on the host, `kubectl port-forward`) never passes FORWARD, so it is always allowed,
  as the API requires.

Left out: IPv6 (the local node is IPv4 only), and a named port in an egress rule towards
an `ipBlock` (no pod to resolve the name on: such a port allows nothing).
Refused connections get a TCP reset or an ICMP port-unreachable, so a client fails at
once instead of waiting for a timeout.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "MSNP-"
TOP = f"{PREFIX}FORWARD"
ANY = ""


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    # (name, number, protocol) of every container port, for named ports.
    ports: tuple[tuple[str, int, str], ...] = ()
    node: str = ""


@dataclass(frozen=True)
class Allow:
    """One allowed (peer, protocol, port) combination; ANY where a part is not limited."""

    peer: str = ANY
    protocol: str = ANY
    port: str = ANY


@dataclass
class Ruleset:
    """The chains to install under TOP and the rules of each, in order."""

    chains: dict[str, list[str]] = field(default_factory=dict)

    def restore_text(self, existing: Iterable[str]) -> str:
        """iptables-restore --noflush input: every chain of ours declared (so emptied) and
        refilled, chains no longer wanted deleted; one transaction."""
        stale = sorted(set(existing) - set(self.chains))
        lines = ["*filter"]
        lines += [f":{name} - [0:0]" for name in [*self.chains, *stale]]
        for name, rules in self.chains.items():
            lines += [f"-A {name} {rule}" for rule in rules]
        lines += [f"-X {name}" for name in stale]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"


def pod_info(pod: Mapping[str, Any]) -> PodInfo | None:
    """What the rules need of a pod; None for pods policies do not apply to (host network)
    or that hold no IPv4 address (not started, finished)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    ip = status.get("podIP") or ""
    if not _ipv4(ip):
        return None
    meta = pod.get("metadata") or {}
    ports = tuple(
        (str(p.get("name") or ""), int(p["containerPort"]), str(p.get("protocol") or "TCP"))
        for c in spec.get("containers") or []
        for p in c.get("ports") or []
        if "containerPort" in p
    )
    return PodInfo(
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        ip,
        dict(meta.get("labels") or {}),
        ports,
        str(spec.get("nodeName") or ""),
    )


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector: every matchLabels pair and every matchExpressions requirement holds
    ({} selects everything)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def policy_types(policy: Mapping[str, Any]) -> set[str]:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return set(types)
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


def _ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def _v4(text: str) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def _block(block: Mapping[str, Any]) -> list[str]:
    """An ipBlock as the IPv4 networks it covers: the cidr minus each except."""
    whole = _v4(str(block.get("cidr", "")))
    if whole is None:
        return []
    networks = [whole]
    for text in block.get("except") or []:
        cut = _v4(str(text))
        if cut is None:
            continue
        kept: list[ipaddress.IPv4Network] = []
        for net in networks:
            if cut.subnet_of(net):
                kept += list(net.address_exclude(cut))
            elif not net.subnet_of(cut):
                kept.append(net)
        networks = kept
    return sorted(str(n) for n in networks)


@dataclass(frozen=True)
class World:
    """Everything the rules depend on."""

    policies: tuple[Mapping[str, Any], ...]
    pods: tuple[PodInfo, ...]
    namespaces: Mapping[str, Mapping[str, str]]


def _peers(world: World, policy_ns: str, peers: list[Mapping[str, Any]] | None) -> list[Any]:
    """The peers of a rule: ANY, or networks (str) and pods (PodInfo)."""
    if not peers:
        return [ANY]
    out: list[Any] = []
    for peer in peers:
        if "ipBlock" in peer:
            out += _block(peer["ipBlock"] or {})
            continue
        ns_selector = peer.get("namespaceSelector")
        if ns_selector is not None:
            names = {n for n, labels in world.namespaces.items() if selects(ns_selector, labels)}
        else:
            names = {policy_ns}
        pod_selector = peer.get("podSelector")
        out += [
            p
            for p in world.pods
            if p.namespace in names and (pod_selector is None or selects(pod_selector, p.labels))
        ]
    return out


def _ports(port_specs: list[Mapping[str, Any]] | None, target: PodInfo | None) -> list[Allow]:
    """(protocol, port) pairs of a rule; a named port is looked up on ``target``."""
    if not port_specs:
        return [Allow()]
    out: list[Allow] = []
    for spec in port_specs:
        protocol = str(spec.get("protocol") or "TCP")
        port = spec.get("port")
        if port is None:
            out.append(Allow(protocol=protocol))
        elif isinstance(port, int) or str(port).isdigit():
            end = spec.get("endPort")
            text = f"{int(port)}:{int(end)}" if end else str(int(port))
            out.append(Allow(protocol=protocol, port=text))
        elif target is not None:
            out += [
                Allow(protocol=protocol, port=str(number))
                for name, number, proto in target.ports
                if name == port and proto == protocol
            ]
    return out


def _allows(world: World, pod: PodInfo, direction: str) -> list[Allow] | None:
    """What may reach ``pod`` (direction Ingress) or what it may reach (Egress); None when
    no policy isolates the pod in that direction."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    isolated = False
    found: list[Allow] = []
    for policy in world.policies:
        meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
        if meta.get("namespace") != pod.namespace or direction not in policy_types(policy):
            continue
        if not selects(spec.get("podSelector") or {}, pod.labels):
            continue
        isolated = True
        for rule in spec.get(key) or []:
            for peer in _peers(world, pod.namespace, rule.get(peers_key)):
                # A named port belongs to the receiving pod: this one for ingress, the peer
                # for egress.
                target = pod if direction == "Ingress" else peer
                ports = _ports(rule.get("ports"), target if isinstance(target, PodInfo) else None)
                address = f"{peer.ip}/32" if isinstance(peer, PodInfo) else peer
                found += [Allow(address, p.protocol, p.port) for p in ports]
    if not isolated:
        return None
    return sorted(set(found), key=lambda a: (a.peer, a.protocol, a.port))


def chain_name(direction: str, pod: PodInfo) -> str:
    digest = hashlib.sha256(f"{pod.namespace}/{pod.name}".encode()).hexdigest()[:16].upper()
    return f"{PREFIX}{direction[0]}-{digest}"


def _match(allow: Allow, peer_flag: str) -> str:
    parts = []
    if allow.peer:
        parts.append(f"{peer_flag} {allow.peer}")
    if allow.protocol:
        proto = allow.protocol.lower()
        parts.append(f"-p {proto}")
        if allow.port:
            parts.append(f"-m {proto} --dport {allow.port}")
    return " ".join(parts)


_REFUSE = ["-p tcp -j REJECT --reject-with tcp-reset", "-j REJECT"]


def render(world: World, node: str | None = None) -> Ruleset:
    """The chains: TOP lets replies through and sends each isolated pod's new connections to
    its own chain, which returns what is allowed and refuses the rest. With ``node``, only
    that node's pods get chains (each node guards its own pods; peers are every pod)."""
    top = ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    chains: dict[str, list[str]] = {TOP: top}
    local = [p for p in world.pods if node is None or p.node == node]
    for pod in sorted(local, key=lambda p: (p.namespace, p.name)):
        for direction, own, peer_flag in (("Ingress", "-d", "-s"), ("Egress", "-s", "-d")):
            allows = _allows(world, pod, direction)
            if allows is None:
                continue
            name = chain_name(direction, pod)
            rules = [f"{peer_flag} {pod.ip}/32 -j RETURN"]  # a pod may reach itself
            rules += [f"{_match(a, peer_flag)} -j RETURN".lstrip() for a in allows]
            chains[name] = [*rules, *_REFUSE]
            top.append(f"{own} {pod.ip}/32 -j {name}")
    return Ruleset(chains)
