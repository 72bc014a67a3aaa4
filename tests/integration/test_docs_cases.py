"""The k0smotron docs' cases, applied to a real API server: live objects hold the golden fields.

tests/unit/test_render_golden.py pins what rendering produces for each documented case.
This checks the other half: that the operator, reconciling the same Cluster through the
webhook and server-side apply on a kwok mothership, leaves every one of those objects in
the API with every field the golden file sets, at the same value. The server may add
fields (defaults, status, clusterIP, ...); it may not drop or change one we set.

A golden file is rendered from fixed facts (a documentation IP as external address, a
made-up Service cluster IP, the doc's namespace); live objects carry the facts the operator
observed. Those values are swapped in explicitly below (`Translation`), nothing else is.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.batch_v1 import CronJob
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret, Service
from lightkube.resources.networking_v1 import Ingress, NetworkPolicy
from lightkube.types import PatchType

from mothership.testenv import kube
from tests.integration import test_cluster_operator as operator_tests
from tests.unit.test_render_golden import CASES, GOLDEN

# The operator run and the CRD-applying client of the operator tests, one per module.
kc = operator_tests.kc
operator = operator_tests.operator
Cluster = operator_tests.Cluster

DOCS_CASES = [
    "basic",
    "nodeport",
    "loadbalancer",
    "ingress",
    "etcd-ha",
    "kine-url",
    "kine-secret",
    "pvc",
    "monitoring",
]
RESOURCES: dict[str, type] = {
    "ConfigMap": ConfigMap,
    "Service": Service,
    "StatefulSet": StatefulSet,
    "CronJob": CronJob,
    "Ingress": Ingress,
    "NetworkPolicy": NetworkPolicy,
}
# Metadata the API server owns; a golden file never sets them, but if one did they could
# not match a live object.
SERVER_OWNED = {"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"}
K0S_YAML = "K0SMOTRON_K0S_YAML"
CONVERGE_TIMEOUT = int(os.environ.get("DOCS_CASES_TIMEOUT", "90"))


def mismatches(expected: Any, live: Any, path: str = "") -> list[str]:
    """Where `live` lacks or differs from what `expected` sets (a recursive subset match).

    Maps: every key of `expected` must be in `live` and match; `live` may have more keys.
    Lists: same length, element by element (lists we apply are not extended by the server).
    Anything else: equal.
    """
    if isinstance(expected, dict):
        if not isinstance(live, dict):
            return [f"{path or '.'}: expected a map, live has {live!r}"]
        out: list[str] = []
        for key, value in expected.items():
            if path == ".metadata" and key in SERVER_OWNED:
                continue
            if key not in live:
                out.append(f"{path}.{key}: missing (expected {value!r})")
            else:
                out.extend(mismatches(value, live[key], f"{path}.{key}"))
        return out
    if isinstance(expected, list):
        if not isinstance(live, list) or len(live) != len(expected):
            return [f"{path}: expected {expected!r}, live has {live!r}"]
        out = []
        for i, (e, v) in enumerate(zip(expected, live, strict=True)):
            out.extend(mismatches(e, v, f"{path}[{i}]"))
        return out
    return [] if expected == live else [f"{path}: expected {expected!r}, live has {live!r}"]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Translation:
    """The golden case's fixed facts and their live counterparts.

    - namespace: the golden files use the doc's namespace; each case runs in a fresh one.
      It appears in metadata.namespace and in in-cluster DNS names the renderer builds
      from our own Service names (`kmc-...<ns>`, `$SVC_NAME.<ns>.svc`). A namespace inside
      user input (the kine URL's `acid-minimal-cluster.default`) is not ours and stays.
    - address: the external address the golden was rendered with is a documentation IP;
      live it is what the operator detected (status.externalAddress, a kwok node address).
      Cases rendered without one (ClusterIP Services) have none in the golden.
    - IP SANs: the API server certificate SANs hold the external address and the cluster
      IPs of the Cluster's Services, both assigned live; they are compared as a set against
      the live address plus the live Services' clusterIPs. Name SANs stay exact.
    """

    cluster: str
    golden_ns: str
    live_ns: str
    golden_address: str | None
    golden_ips: tuple[str, ...]
    live_address: str
    live_ips: frozenset[str]

    def _dns(self) -> re.Pattern[str]:
        ns = re.escape(self.golden_ns)
        return re.compile(rf"(?<![\w-])(kmc-[a-z0-9-]+|\$SVC_NAME)\.{ns}(?=\.svc\b|\s|$)")

    def text(self, value: str) -> str:
        value = self._dns().sub(rf"\1.{self.live_ns}", value)
        if self.golden_address:
            value = re.sub(
                rf"(?<![\d.]){re.escape(self.golden_address)}(?![\d.])", self.live_address, value
            )
        return value

    def obj(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.obj(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.obj(v) for v in value]
        if isinstance(value, str):
            if key == "namespace" and value == self.golden_ns:
                return self.live_ns
            return self.text(value)
        return value


def k0s_yaml_mismatches(expected: str, live: str, tr: Translation, path: str) -> list[str]:
    """The k0s config compared as YAML, with its IP SANs as the live facts' set."""
    want, have = yaml.safe_load(tr.text(expected)), yaml.safe_load(live)
    want_sans = want.get("spec", {}).get("api", {}).pop("sans", [])
    have_sans = have.get("spec", {}).get("api", {}).pop("sans", [])
    out = mismatches(want, have, path)
    names = [s for s in want_sans if not _is_ip(s)]
    live_names = [s for s in have_sans if not _is_ip(s)]
    if names != live_names:
        out.append(f"{path}.spec.api.sans (names): expected {names}, live has {live_names}")
    live_ip_sans = {s for s in have_sans if _is_ip(s)}
    golden_facts = set(tr.golden_ips) | {tr.golden_address}
    fixed = {s for s in want_sans if _is_ip(s) and s not in golden_facts}
    expected_ips = fixed | tr.live_ips | ({tr.live_address} if _is_ip(tr.live_address) else set())
    if live_ip_sans != expected_ips:
        out.append(f"{path}.spec.api.sans (IPs): expected {expected_ips}, live has {live_ip_sans}")
    return out


def without_endpoint_mount(live: dict[str, Any], volume: str) -> dict[str, Any]:
    """The pod template without the endpoint ConfigMap's volume and mounts.

    A golden rendered without an external address has no endpoint ConfigMap, so its pods
    do not mount one; live, the operator always detects an address (a kwok node's) and
    mounts it. Only that volume, by name, is taken out; every other entry still counts.
    """
    live = copy.deepcopy(live)
    pod = live.get("spec", {}).get("template", {}).get("spec", {})
    pod["volumes"] = [v for v in pod.get("volumes", []) if v.get("name") != volume]
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        if "volumeMounts" in c:
            c["volumeMounts"] = [m for m in c["volumeMounts"] if m.get("name") != volume]
    return live


def object_mismatches(golden: dict[str, Any], live: dict[str, Any], tr: Translation) -> list[str]:
    where = f"{golden['kind']}/{golden['metadata']['name']}"
    expected = tr.obj(golden)
    k0s = None
    if golden["kind"] == "ConfigMap" and K0S_YAML in golden.get("data", {}):
        k0s = golden["data"][K0S_YAML]
        del expected["data"][K0S_YAML]
    if golden["kind"] == "StatefulSet" and tr.golden_address is None:
        live = without_endpoint_mount(live, f"kmc-{tr.cluster}-endpoint")
    out = [f"{where}{m}" for m in mismatches(expected, live)]
    if k0s is not None:
        have = live.get("data", {}).get(K0S_YAML)
        if have is None:
            out.append(f"{where}.data.{K0S_YAML}: missing")
        else:
            out.extend(k0s_yaml_mismatches(k0s, have, tr, f"{where}.data.{K0S_YAML}"))
    return out


def goldens(case: str) -> list[dict[str, Any]]:
    paths = sorted((GOLDEN / case).glob("*.yaml"))
    assert paths, f"no golden files for {case}"
    return [yaml.safe_load(p.read_text()) for p in paths]


def case_cluster(case: str) -> dict[str, Any]:
    manifest, _ = CASES[case]
    return yaml.safe_load(manifest)


@dataclass
class Applied:
    case: str
    name: str
    golden_ns: str
    live_ns: str


@pytest.fixture(scope="module")
def applied(kc: Client, operator: operator_tests.Operator) -> Iterator[dict[str, Applied]]:
    """Every case's Cluster, each in a fresh namespace, applied at once so they converge
    side by side under the one operator."""
    out: dict[str, Applied] = {}
    try:
        for case in DOCS_CASES:
            doc = case_cluster(case)
            live_ns = f"docs-{case}-{uuid.uuid4().hex[:5]}"
            kc.create(Namespace(metadata=ObjectMeta(name=live_ns)))
            out[case] = Applied(
                case, doc["metadata"]["name"], doc["metadata"]["namespace"], live_ns
            )
            spec = doc.get("spec") or {}
            secret = (spec.get("storage") or {}).get("kine", {}).get("dataSourceSecretName")
            if secret:
                # The kine-secret case's prerequisite: the Secret the docs tell users to create.
                kc.create(
                    Secret(
                        metadata=ObjectMeta(name=secret, namespace=live_ns),
                        stringData={
                            "K0SMOTRON_KINE_DATASOURCE_URL": (
                                "postgres://k0smotron:passwd@db.example:5432/kine"
                            )
                        },
                    )
                )
            body: dict[str, Any] = {"metadata": ObjectMeta(name=out[case].name, namespace=live_ns)}
            if spec:
                body["spec"] = spec
            kc.create(Cluster(**body))
        yield out
    finally:
        for a in out.values():
            kc.delete(Namespace, a.live_ns)
        for a in out.values():
            kube.wait_until(f"namespace {a.live_ns} gone", lambda n=a.live_ns: _gone(kc, n), 180)


def _gone(kc: Client, ns: str) -> bool:
    try:
        kc.get(Namespace, ns)
    except ApiError as exc:
        if exc.status.code == 404:
            return True
        raise
    return False


def _live(kc: Client, kind: str, name: str, ns: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = kc.get(RESOURCES[kind], name, namespace=ns).to_dict()
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    return obj


def translation(kc: Client, a: Applied) -> Translation | None:
    """The live facts, once the operator has recorded an external address."""
    status = kc.get(Cluster, a.name, namespace=a.live_ns).status or {}
    address = status.get("externalAddress")
    if not address:
        return None
    ips = frozenset(
        svc.spec.clusterIP
        for svc in kc.list(Service, namespace=a.live_ns, labels={"cluster": a.name})
        if svc.spec.clusterIP and svc.spec.clusterIP != "None"
    )
    facts = CASES[a.case][1]
    return Translation(
        a.name,
        a.golden_ns,
        a.live_ns,
        facts.external_address,
        facts.service_cluster_ips,
        address,
        ips,
    )


def assign_load_balancer(kc: Client, service: str, a: Applied) -> None:
    """Play the cloud's load balancer controller, which kwok does not have.

    A LoadBalancer Service gets its address from such a controller writing
    status.loadBalancer; the operator takes the external address from there. Writing the
    address the golden was rendered with makes the live fact equal the golden one.
    """
    address = CASES[a.case][1].external_address
    assert address, f"{a.case}: the golden has no load balancer address"
    kube.wait_until(
        f"Service {service}",
        lambda: _live(kc, "Service", service, a.live_ns) is not None,
        CONVERGE_TIMEOUT,
    )
    kc.patch(
        Service.Status,
        service,
        {"status": {"loadBalancer": {"ingress": [{"ip": address}]}}},
        namespace=a.live_ns,
        patch_type=PatchType.MERGE,
    )


def case_mismatches(kc: Client, a: Applied) -> list[str]:
    tr = translation(kc, a)
    if tr is None:
        return ["Cluster status.externalAddress: not recorded yet"]
    out: list[str] = []
    for golden in goldens(a.case):
        kind, name = golden["kind"], golden["metadata"]["name"]
        live = _live(kc, kind, name, a.live_ns)
        if live is None:
            out.append(f"{kind}/{name}: does not exist")
        else:
            out.extend(object_mismatches(golden, live, tr))
    return out


@pytest.mark.parametrize("case", DOCS_CASES)
def test_docs_case_objects_hold_every_golden_field(
    kc: Client, applied: dict[str, Applied], case: str
) -> None:
    a = applied[case]
    for golden in goldens(case):
        if golden["kind"] == "Service" and golden["spec"].get("type") == "LoadBalancer":
            assign_load_balancer(kc, golden["metadata"]["name"], a)
    last: list[str] = []

    def converged() -> bool:
        last[:] = case_mismatches(kc, a)
        return not last

    try:
        kube.wait_until(f"{case}: live objects match the golden files", converged, CONVERGE_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"{case} in {a.live_ns}: " + "\n".join(last[:40]))


def test_the_subset_match_notices_a_changed_missing_or_shortened_field() -> None:
    live = {"spec": {"ports": [{"port": 1, "protocol": "TCP"}], "type": "NodePort"}}
    assert mismatches({"spec": {"ports": [{"port": 1}]}}, live) == []
    assert mismatches({"spec": {"type": "ClusterIP"}}, live) == [
        ".spec.type: expected 'ClusterIP', live has 'NodePort'"
    ]
    assert mismatches({"spec": {"selector": {}}}, live) == [".spec.selector: missing (expected {})"]
    assert mismatches({"spec": {"ports": []}}, live)
