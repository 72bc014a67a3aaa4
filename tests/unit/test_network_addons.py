"""The tenant's pod network and metrics-server as rendered into it (pure)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import network_addons
from mothership.render.facts import Facts
from mothership.render.tenant_addons import render_tenant_addons


def cluster(**spec: Any) -> Cluster:
    return Cluster.model_validate(
        {
            "apiVersion": "k0smotron.io/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": {"distribution": "kubernetes", "version": "v1.35.4", **spec},
        }
    )


FACTS = Facts(external_address="10.200.0.1")


def test_flannel_dials_the_api_server_without_the_kubernetes_service() -> None:
    """A new node's kube-proxy may not have the Service's rules yet; flannel must not wait."""
    ds = next(o for o in network_addons.flannel(cluster(), FACTS) if o["kind"] == "DaemonSet")
    flanneld = ds["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in flanneld["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "10.200.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "30443"


def kinds(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def test_flannel_and_metrics_server_by_default() -> None:
    objs = network_addons.render_network_addons(cluster(), FACTS)
    assert ("DaemonSet", "kube-flannel") in kinds(objs)
    assert ("Deployment", "metrics-server") in kinds(objs)
    assert ("APIService", "v1beta1.metrics.k8s.io") in kinds(objs)
    conf = next(o for o in objs if o["metadata"]["name"] == "kube-flannel-cfg")
    net = json.loads(conf["data"]["net-conf.json"])
    assert net == {"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "Port": 8472}}


def test_the_pod_range_comes_from_k0s_config() -> None:
    objs = network_addons.render_network_addons(
        cluster(k0sConfig={"spec": {"network": {"podCIDR": "10.50.0.0/16"}}}), FACTS
    )
    conf = next(o for o in objs if o["metadata"]["name"] == "kube-flannel-cfg")
    assert json.loads(conf["data"]["net-conf.json"])["Network"] == "10.50.0.0/16"


def test_custom_provider_deploys_no_network() -> None:
    objs = network_addons.render_network_addons(
        cluster(k0sConfig={"spec": {"network": {"provider": "custom"}}}), FACTS
    )
    assert not [o for o in objs if "flannel" in o["metadata"]["name"]]
    assert ("Deployment", "metrics-server") in kinds(objs)


def test_metrics_server_disabled_as_in_k0s() -> None:
    for flags in (
        ["--disable-components=metrics-server"],
        ["--disable-components", "x,metrics-server"],
    ):
        objs = network_addons.render_network_addons(cluster(controlPlaneFlags=flags), FACTS)
        assert not [o for o in objs if "metrics" in o["metadata"]["name"]]


def test_the_tenant_add_ons_include_them_before_cluster_info() -> None:
    facts = Facts(external_address="10.200.0.1")
    objs = render_tenant_addons(cluster(), facts, b"-----BEGIN CERTIFICATE-----\n")
    names = kinds(objs)
    assert names.index(("DaemonSet", "kube-flannel")) < names.index(("ConfigMap", "cluster-info"))
    assert names[-1] == ("ConfigMap", "cluster-info")


def test_the_cni_writer_turns_flanneld_subnet_into_a_bridge_config(tmp_path: Path) -> None:
    """Runs the container's script with sh against a subnet.env like flanneld's."""
    ds = next(o for o in network_addons.flannel(cluster(), FACTS) if o["kind"] == "DaemonSet")
    writer = next(
        c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "install-cni"
    )
    script = writer["command"][2]
    run, netd = tmp_path / "run", tmp_path / "netd"
    run.mkdir()
    netd.mkdir()
    (run / "subnet.env").write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\n"
        "FLANNEL_IPMASQ=true\n"
    )
    once = script.replace("/run/flannel", str(run)).replace("/etc/cni/net.d", str(netd))
    once = once.replace("  sleep 5\ndone", "  break\ndone")
    out = subprocess.run(["sh", "-c", once], capture_output=True, text=True, check=True)
    conf = json.loads((netd / network_addons.CNI_CONF).read_text())
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["mtu"] == 1450
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert "wrote" in out.stdout
