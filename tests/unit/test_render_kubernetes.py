"""Rules of the kubernetes distribution's rendering, one per test (goldens show the whole)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from cryptography import x509

from mothership import pki
from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import kubernetes_certs, network, tenant_addons
from mothership.render import kubernetes_control_plane as kcp
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts, RenderError

NS = "tenants"
TEMPLATE = "localhost/mothership/control-plane:{version}"
FACTS = Facts(external_address="10.96.5.5", service_cluster_ips=("10.96.5.5",))


def make(**spec: Any) -> Cluster:
    return Cluster.model_validate(
        {
            "metadata": {"name": "demo", "namespace": NS},
            "spec": {"distribution": "kubernetes", "version": "v1.35.4", **spec},
        }
    )


def objects(cluster: Cluster, facts: Facts = FACTS) -> list[dict[str, Any]]:
    return render_cluster(cluster, facts)


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def pod(cluster: Cluster, facts: Facts = FACTS) -> dict[str, Any]:
    return find(objects(cluster, facts), "StatefulSet", "kmc-demo")["spec"]["template"]["spec"]


def container(cluster: Cluster, name: str, facts: Facts = FACTS) -> dict[str, Any]:
    return next(c for c in pod(cluster, facts)["containers"] if c["name"] == name)


def flags(c: dict[str, Any]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in c["args"])


# --- the pod ------------------------------------------------------------------------------------


def test_containers_per_storage() -> None:
    upstream = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "konnectivity-server",
    ]
    for storage, extra in (({"type": "etcd"}, []), ({"type": "kine"}, ["kine"])):
        names = [c["name"] for c in pod(make(storage=storage))["containers"]]
        assert names == upstream + extra
    nats = [c["name"] for c in pod(make(storage={"type": "nats"}))["containers"]]
    assert nats == [*upstream, "kine"]


def test_pod_template_is_byte_stable_across_renders() -> None:
    spec = {"replicas": 3, "storage": {"type": "etcd"}, "monitoring": {"enabled": True}}
    facts = Facts(
        external_address="192.0.2.9",
        service_cluster_ips=("10.96.1.1",),
        kubernetes_image_template=TEMPLATE,
    )
    first = json.dumps(objects(make(**spec), facts), sort_keys=True)
    second = json.dumps(objects(make(**copy.deepcopy(spec)), facts), sort_keys=True)
    assert first == second
    # Nothing from the clock or a random source, and no certificate content in the pod.
    assert "BEGIN" not in first and str(datetime.now(UTC).year) not in first


def test_apiserver_flags() -> None:
    f = flags(container(make(service={"apiPort": 31443}), "kube-apiserver"))
    assert f["secure-port"] == "31443"
    assert f["authorization-mode"] == "Node,RBAC"
    assert f["enable-bootstrap-token-auth"] == "true"
    assert f["service-account-key-file"].endswith("/sa.pub")
    assert f["service-account-signing-key-file"].endswith("/sa.key")
    assert f["requestheader-client-ca-file"].endswith("/front-proxy-ca.crt")
    assert f["proxy-client-cert-file"].endswith("/front-proxy-client.crt")
    assert f["service-cluster-ip-range"] == network.DEFAULT_SERVICE_CIDR
    assert f["egress-selector-config-file"] == "/etc/kubernetes/config/egress-selector.yaml"
    # Every replica advertises the address workers use; the lease reconciler keeps it.
    assert (f["advertise-address"], f["endpoint-reconciler-type"]) == ("10.96.5.5", "lease")
    hostname = Facts(external_address="api.example.com")
    f = flags(container(make(), "kube-apiserver", hostname))
    assert (f["advertise-address"], f["endpoint-reconciler-type"]) == ("$(POD_IP)", "none")


def test_service_cidr_comes_from_k0s_config_and_bad_ones_are_render_errors() -> None:
    cluster = make(k0sConfig={"spec": {"network": {"serviceCIDR": "10.100.0.0/16"}}})
    assert flags(container(cluster, "kube-apiserver"))["service-cluster-ip-range"] == (
        "10.100.0.0/16"
    )
    assert flags(container(cluster, "kube-controller-manager"))["service-cluster-ip-range"] == (
        "10.100.0.0/16"
    )
    with pytest.raises(RenderError, match="serviceCIDR"):
        objects(make(k0sConfig={"spec": {"network": {"serviceCIDR": "10.100.0.1/16"}}}))


def test_user_flags_replace_ours_by_name() -> None:
    cluster = make(controlPlaneFlags=["--authorization-mode=RBAC", "--v=4"])
    args = container(cluster, "kube-apiserver")["args"]
    assert "--authorization-mode=Node,RBAC" not in args
    assert args[-2:] == ["--authorization-mode=RBAC", "--v=4"]


def test_tuning_adds_flags_by_name_and_go_runtime_settings_per_component() -> None:
    cluster = make(
        storage={"type": "kine"},
        kubernetes={
            "tuning": {
                "apiServer": {"goGC": 50, "goMemoryLimit": "150Mi"},
                "controllerManager": {"flags": ["--controllers=*,-attachdetach", "--v=2"]},
                "kine": {"flags": ["--datastore-poll-interval=5s"], "goGC": 75},
            }
        },
    )
    apiserver = container(cluster, "kube-apiserver")
    env = {e["name"]: e.get("value") for e in apiserver["env"]}
    assert env["GOGC"] == "50" and env["GOMEMLIMIT"] == str(150 * 1024 * 1024)
    assert "POD_IP" in env  # ours stay
    kcm = flags(container(cluster, "kube-controller-manager"))
    assert kcm["controllers"] == "*,-attachdetach" and kcm["v"] == "2"
    kine_container = container(cluster, "kine")
    assert flags(kine_container)["datastore-poll-interval"] == "5s"
    assert kine_container["args"].count("--datastore-poll-interval=5s") == 1
    assert {e["name"]: e["value"] for e in kine_container["env"]} == {"GOGC": "75"}
    untouched = container(cluster, "kube-scheduler")
    assert "env" not in untouched and untouched == container(make(), "kube-scheduler")


def test_leader_election_only_with_more_than_one_replica_unless_tuned_back_on() -> None:
    # One replica is one StatefulSet pod: never two of it at once, nobody to elect against.
    for replicas, want in ((1, "false"), (0, "false"), (3, "true")):
        cluster = make(replicas=replicas)
        for name in ("kube-controller-manager", "kube-scheduler"):
            assert flags(container(cluster, name))["leader-elect"] == want, (replicas, name)
    tuned = make(
        kubernetes={"tuning": {"scheduler": {"flags": ["--leader-elect=true"]}}},
    )
    args = container(tuned, "kube-scheduler")["args"]
    assert [a for a in args if a.startswith("--leader-elect")] == ["--leader-elect=true"]
    assert flags(container(tuned, "kube-controller-manager"))["leader-elect"] == "false"


def test_kine_on_sqlite_polls_rarely_and_on_a_shared_database_as_kine_does() -> None:
    # SQLite in the pod has one writer, this kine, whose own writes wake its watches.
    sqlite = make(storage={"type": "kine"})
    assert flags(container(sqlite, "kine"))["datastore-poll-interval"] == "10s"
    shared = make(storage={"type": "kine", "kine": {"dataSourceURL": "postgres://db/x"}})
    on_postgres = container(shared, "kine")
    assert "datastore-poll-interval" not in flags(on_postgres)
    assert flags(on_postgres)["endpoint"] == "postgres://db/x"
    assert "env" not in on_postgres  # the URL is given, no Secret is read
    from_secret = make(storage={"type": "kine", "kine": {"dataSourceSecretName": "db"}})
    [endpoint] = container(from_secret, "kine")["env"]
    assert endpoint["valueFrom"]["secretKeyRef"]["name"] == "db"
    assert "datastore-poll-interval" not in flags(container(from_secret, "kine"))


def test_controller_manager_signs_and_runs_the_bootstrap_controllers() -> None:
    f = flags(container(make(), "kube-controller-manager"))
    assert f["controllers"] == "*,bootstrapsigner,tokencleaner"
    assert f["cluster-signing-cert-file"].endswith("/ca.crt")
    assert f["cluster-signing-key-file"].endswith("/ca.key")
    assert f["root-ca-file"].endswith("/ca.crt")
    assert f["service-account-private-key-file"].endswith("/sa.key")
    # Only the controller manager's volume carries the CA key.
    volumes = {v["name"]: v for v in pod(make())["volumes"]}
    for name, volume in volumes.items():
        items = [
            (source["secret"]["name"], item["path"])
            for source in volume.get("projected", {}).get("sources", [])
            for item in source["secret"]["items"]
        ]
        has_ca_key = ("demo-ca", "ca.key") in items
        assert has_ca_key == (name == "pki-controller-manager"), name


def test_egress_goes_through_konnectivity_over_a_shared_socket() -> None:
    config_map = find(objects(make()), "ConfigMap", "kmc-demo-kubernetes")
    egress = yaml.safe_load(config_map["data"]["egress-selector.yaml"])
    assert egress["kind"] == "EgressSelectorConfiguration"
    by_name = {e["name"]: e["connection"] for e in egress["egressSelections"]}
    assert by_name["cluster"] == {
        "proxyProtocol": "GRPC",
        "transport": {"uds": {"udsName": kcp.UDS_PATH}},
    }
    assert by_name["etcd"]["proxyProtocol"] == "Direct"
    konnectivity = flags(container(make(), "konnectivity-server"))
    assert konnectivity["uds-name"] == kcp.UDS_PATH
    assert konnectivity["mode"] == "grpc" and konnectivity["server-port"] == "0"
    assert konnectivity["agent-port"] == "30132"
    assert konnectivity["authentication-audience"] == "system:konnectivity-server"
    assert konnectivity["agent-service-account"] == "konnectivity-agent"
    socket_volume = {v["name"]: v for v in pod(make())["volumes"]}[kcp.UDS_VOLUME]
    assert socket_volume == {"name": kcp.UDS_VOLUME, "emptyDir": {}}
    for name in ("kube-apiserver", "konnectivity-server"):
        mounts = container(make(), name)["volumeMounts"]
        assert {"name": kcp.UDS_VOLUME, "mountPath": kcp.UDS_DIR} in mounts, name


def test_kine_sqlite_lives_on_the_data_volume() -> None:
    cluster = make(storage={"type": "kine"}, persistence={"type": "hostPath", "hostPath": "/d"})
    kine = container(cluster, "kine")
    endpoint = flags(kine)["endpoint"]
    assert endpoint.startswith(f"sqlite://{kcp.DATA_DIR}/kine.db?")
    assert {"name": "kmc-demo", "mountPath": kcp.DATA_DIR} in kine["volumeMounts"]
    assert {"name": "kmc-demo", "hostPath": {"path": "/d"}} in pod(cluster)["volumes"]
    assert flags(container(cluster, "kube-apiserver"))["etcd-servers"] == "http://127.0.0.1:2379"


def test_kine_url_from_the_secret_never_enters_the_pod_spec() -> None:
    cluster = make(storage={"type": "kine", "kine": {"dataSourceSecretName": "db"}})
    kine = container(cluster, "kine")
    assert "endpoint" not in flags(kine)
    assert kine["env"] == [
        {
            "name": "KINE_ENDPOINT",
            "valueFrom": {"secretKeyRef": {"name": "db", "key": "K0SMOTRON_KINE_DATASOURCE_URL"}},
        }
    ]
    inline = make(storage={"type": "kine", "kine": {"dataSourceURL": "postgres://db/x"}})
    assert flags(container(inline, "kine"))["endpoint"] == "postgres://db/x"


def test_a_datastore_with_tls_gives_kine_its_ca_in_both_distributions() -> None:
    storage = {"type": "kine", "kine": {"dataStoreRef": {"name": "pg"}}}
    cluster = make(storage=storage)
    tls = dataclasses.replace(FACTS, datastore_tls=True)
    assert "ca-file" not in flags(container(cluster, "kine"))  # without TLS: as before
    assert "datastore-ca" not in {v["name"] for v in pod(cluster)["volumes"]}
    kine = container(cluster, "kine", tls)
    assert flags(kine)["ca-file"] == "/etc/mothership/datastore/ca.crt"
    assert {"name": "datastore-ca", "mountPath": "/etc/mothership/datastore", "readOnly": True} in (
        kine["volumeMounts"]
    )
    volume = {v["name"]: v for v in pod(cluster, tls)["volumes"]}["datastore-ca"]
    assert volume["secret"] == {
        "secretName": "demo-datastore",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    k0s = Cluster.model_validate(
        {"metadata": {"name": "demo", "namespace": NS}, "spec": {"storage": storage}}
    )
    sts = find(render_cluster(k0s, tls), "StatefulSet", "kmc-demo")["spec"]["template"]["spec"]
    controller = sts["containers"][0]
    assert {"name": "datastore-ca", "mountPath": "/etc/mothership/datastore", "readOnly": True} in (
        controller["volumeMounts"]
    )
    assert "datastore-ca" in {v["name"] for v in sts["volumes"]}


def test_nats_is_embedded_in_kine_with_routes_from_the_environment() -> None:
    cluster = make(replicas=3, storage={"type": "nats"})
    kine = container(cluster, "kine")
    assert flags(kine)["endpoint"] == "nats://?serverConfig=/etc/nats/nats.conf&replicas=3"
    env = {e["name"]: e for e in kine["env"]}
    assert env["MOTHERSHIP_NATS_ROUTE_2"]["value"] == (
        "nats://nats:$(MOTHERSHIP_NATS_TOKEN)@kmc-demo-2.kmc-demo-nats.tenants.svc:6222"
    )
    assert list(env).index("MOTHERSHIP_NATS_TOKEN") < list(env).index("MOTHERSHIP_NATS_ROUTE_0")
    conf = find(objects(cluster), "ConfigMap", "kmc-demo-kubernetes")["data"]["nats.conf"]
    assert "server_name: $POD_NAME" in conf and "$MOTHERSHIP_NATS_ROUTE_2" in conf
    sts = find(objects(cluster), "StatefulSet", "kmc-demo")
    assert sts["spec"]["serviceName"] == "kmc-demo-nats"
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["nats-data"]
    single = find(objects(make(storage={"type": "nats"})), "ConfigMap", "kmc-demo-kubernetes")
    assert "cluster {" not in single["data"]["nats.conf"]


def test_etcd_storage_uses_the_managed_etcd_with_client_certificates() -> None:
    cluster = make(storage={"type": "etcd"})
    f = flags(container(cluster, "kube-apiserver"))
    assert f["etcd-servers"] == "https://kmc-demo-etcd:2379"
    assert f["etcd-prefix"] == "/demo"
    volume = {v["name"]: v for v in pod(cluster)["volumes"]}["pki-apiserver"]
    secrets = {s["secret"]["name"] for s in volume["projected"]["sources"]}
    assert {"demo-etcd", "demo-apiserver-etcd-client"} <= secrets
    etcd = find(objects(cluster), "StatefulSet", "kmc-demo-etcd")
    init = etcd["spec"]["template"]["spec"]["initContainers"][0]
    # No k0s image exists for this distribution: the DNS check runs in the etcd image.
    assert init["image"] == etcd["spec"]["template"]["spec"]["containers"][0]["image"]


def test_an_etcd_datastore_replaces_the_managed_etcd_with_the_tenant_secret() -> None:
    cluster = make(storage={"type": "etcd", "etcd": {"dataStoreRef": {"name": "shared"}}})
    objs = objects(cluster)
    assert not [o for o in objs if "etcd" in o["metadata"]["name"]]
    apiserver = container(cluster, "kube-apiserver")
    f = flags(apiserver)
    assert f["etcd-servers"] == "$(MOTHERSHIP_ETCD_SERVERS)"
    assert f["etcd-prefix"] == "$(MOTHERSHIP_ETCD_PREFIX)"
    assert f["etcd-compaction-interval"] == "0"  # tenants may not compact a shared etcd
    assert (f["etcd-cafile"], f["etcd-certfile"], f["etcd-keyfile"]) == (
        "/etc/kubernetes/pki/datastore-ca.crt",
        "/etc/kubernetes/pki/datastore-client.crt",
        "/etc/kubernetes/pki/datastore-client.key",
    )
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in apiserver["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert env["MOTHERSHIP_ETCD_SERVERS"] == {"name": "demo-datastore", "key": "endpoints"}
    assert env["MOTHERSHIP_ETCD_PREFIX"] == {"name": "demo-datastore", "key": "prefix"}
    volume = {v["name"]: v for v in pod(cluster)["volumes"]}["pki-apiserver"]
    sources = {s["secret"]["name"]: s["secret"]["items"] for s in volume["projected"]["sources"]}
    assert sources["demo-datastore"] == [
        {"key": "ca.crt", "path": "datastore-ca.crt"},
        {"key": "tls.crt", "path": "datastore-client.crt"},
        {"key": "tls.key", "path": "datastore-client.key"},
    ]
    assert "demo-etcd" not in sources and "demo-apiserver-etcd-client" not in sources
    sts = find(objs, "StatefulSet", "kmc-demo")
    assert sts["spec"]["template"]["metadata"]["annotations"]["mothership.io/datastore"] == "shared"
    assert not [c for c in pod(cluster)["containers"] if c["name"] == "kine"]
    # A rewritten tenant Secret (a new revision) rolls the pods.
    renewed = dataclasses.replace(FACTS, datastore_revision="0a1b2c3d4e5f6789")
    template = find(render_cluster(cluster, renewed), "StatefulSet", "kmc-demo")["spec"]["template"]
    assert template["metadata"]["annotations"]["mothership.io/datastore-revision"] == (
        "0a1b2c3d4e5f6789"
    )
    assert template != sts["spec"]["template"]


def test_growing_etcd_changes_the_member_count_not_the_pods() -> None:
    """The founding members stay what the StatefulSet was first written with (its
    annotation, read back as a fact): each growth step adds a pod and restarts none."""
    from mothership.render.etcd import FOUNDING_ANNOTATION

    cluster = make(replicas=3, storage={"type": "etcd"})

    def etcd_sts(**facts: Any) -> dict[str, Any]:
        f = Facts(external_address="10.0.0.1", **facts)
        return find(objects(cluster, f), "StatefulSet", "kmc-demo-etcd")

    def env(sts: dict[str, Any], container: str) -> dict[str, str]:
        spec = sts["spec"]["template"]["spec"]
        c = next(c for c in spec["initContainers"] + spec["containers"] if c["name"] == container)
        return {e["name"]: e["value"] for e in c["env"]}

    new = etcd_sts()  # a new cluster of three: all three found it together
    founders = new["metadata"]["annotations"][FOUNDING_ANNOTATION]
    assert founders.count("=https://") == 3 and new["spec"]["replicas"] == 3
    assert env(new, "etcd")["ETCD_INITIAL_CLUSTER"] == founders
    assert env(new, "init")["ETCD_INITIAL_CLUSTER"] == founders  # it decides who may found

    one = etcd_sts(etcd_replicas=1)  # scaled up from a cluster founded by one member
    recorded = one["metadata"]["annotations"][FOUNDING_ANNOTATION]
    assert recorded == "kmc-demo-etcd-0=https://kmc-demo-etcd-0.kmc-demo-etcd:2380"
    for step in (2, 3):
        grown = etcd_sts(etcd_replicas=step, etcd_initial_cluster=recorded)
        assert grown["spec"]["replicas"] == step
        assert grown["spec"]["template"] == one["spec"]["template"]
        assert grown["metadata"]["annotations"][FOUNDING_ANNOTATION] == recorded


def test_etcd_image_spec_then_operator_default_then_upstream() -> None:
    local = "localhost/mothership/control-plane:v1.35.4"

    def images(cluster: Cluster, facts: Facts) -> set[str]:
        sts = find(objects(cluster, facts), "StatefulSet", "kmc-demo-etcd")
        spec = sts["spec"]["template"]["spec"]
        return {c["image"] for c in spec["initContainers"] + spec["containers"]}

    unset = make(storage={"type": "etcd"})
    assert images(unset, FACTS) == {"quay.io/k0sproject/etcd:v3.7.1"}
    with_default = Facts(external_address="10.0.0.1", default_etcd_image=local)
    assert images(unset, with_default) == {local}
    chosen = make(storage={"type": "etcd", "etcd": {"image": "mirror.example/etcd:3"}})
    assert images(chosen, with_default) == {"mirror.example/etcd:3"}


def test_images_spec_then_template_then_upstream() -> None:
    cluster = make(kubernetes={"images": {"scheduler": "mirror.example/sched:1"}})
    local = Facts(external_address="10.0.0.1", kubernetes_image_template=TEMPLATE)
    by_name = {c["name"]: c for c in pod(cluster, local)["containers"]}
    assert by_name["kube-scheduler"]["image"] == "mirror.example/sched:1"
    assert by_name["kube-apiserver"]["image"] == "localhost/mothership/control-plane:v1.35.4"
    assert by_name["konnectivity-server"]["command"] == ["konnectivity-server"]
    upstream = {c["name"]: c for c in pod(cluster)["containers"]}
    assert upstream["kube-apiserver"]["image"] == "registry.k8s.io/kube-apiserver:v1.35.4"
    assert upstream["konnectivity-server"]["image"].endswith("/proxy-server:v0.34.0")
    assert upstream["konnectivity-server"]["command"] == ["/proxy-server"]


def test_probes_are_https_on_the_api_port() -> None:
    apiserver = container(make(), "kube-apiserver")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        assert apiserver[probe]["httpGet"] == {"path": path, "port": 30443, "scheme": "HTTPS"}


def test_ha_gets_a_pdb_preferred_spread_and_one_at_a_time_rollout() -> None:
    objs = objects(make(replicas=3, storage={"type": "etcd"}))
    pdb = find(objs, "PodDisruptionBudget", "kmc-demo")
    assert pdb["spec"]["maxUnavailable"] == 1
    sts = find(objs, "StatefulSet", "kmc-demo")
    assert sts["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    anti = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    keys = {
        t["podAffinityTerm"]["topologyKey"]
        for t in anti["preferredDuringSchedulingIgnoredDuringExecution"]
    }
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert not [o for o in objects(make()) if o["kind"] == "PodDisruptionBudget"]


def test_no_pods_before_the_address_is_known_and_no_ingress() -> None:
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects(make(), Facts())}
    assert ("StatefulSet", "kmc-demo") not in rendered
    assert ("ConfigMap", "kmc-demo-kubernetes") in rendered
    with pytest.raises(RenderError, match=r"spec\.ingress"):
        objects(make(ingress={"apiHost": "a.example", "konnectivityHost": "k.example"}))


def test_monitoring_gets_its_client_certificate_where_the_scrape_config_looks() -> None:
    spec = pod(make(monitoring={"enabled": True}))
    agent = next(c for c in spec["containers"] if c["name"] == "monitoring-agent")
    assert {"name": "pki-monitoring", "mountPath": "/var/lib/k0s/pki", "readOnly": True} in (
        agent["volumeMounts"]
    )
    volume = next(v for v in spec["volumes"] if v["name"] == "pki-monitoring")
    paths = [i["path"] for s in volume["projected"]["sources"] for i in s["secret"]["items"]]
    assert {"admin.crt", "admin.key"} <= set(paths)


def test_k0s_clusters_render_exactly_as_before() -> None:
    k0s = Cluster.model_validate({"metadata": {"name": "demo", "namespace": NS}, "spec": {}})
    names = [o["metadata"]["name"] for o in render_cluster(k0s, Facts())]
    assert "kmc-demo-kubernetes" not in names and "kmc-demo-config" in names


# --- certificates -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cas() -> tuple[pki.CertKey, pki.CertKey]:
    return pki.new_ca("kubernetes-ca", key_type="rsa"), pki.new_ca("front-proxy-ca")


def test_apiserver_certificate_names(cas: tuple[pki.CertKey, pki.CertKey]) -> None:
    ca, proxy = cas
    cluster = make(externalAddress="api.example.com")
    facts = Facts(service_cluster_ips=("10.96.3.3",))
    secret = kubernetes_certs.certs_secret(cluster, facts, ca=ca, proxy_ca=proxy)
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    cert = x509.load_pem_x509_certificate(data["apiserver.crt"])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert {"api.example.com", "kmc-demo.tenants.svc", "kubernetes.default.svc", "localhost"} <= dns
    assert {"10.96.3.3", "10.96.0.1", "127.0.0.1"} <= ips
    assert pki.cert_signed_by(data["apiserver.crt"], ca.cert_pem)
    assert pki.cert_signed_by(data["front-proxy-client.crt"], proxy.cert_pem)
    for key, user in (
        ("controller-manager.conf", "system:kube-controller-manager"),
        ("scheduler.conf", "system:kube-scheduler"),
        ("konnectivity-server.conf", "system:konnectivity-server"),
    ):
        config = yaml.safe_load(data[key])
        assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:30443"
        client = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
        assert pki.CertKey(client, b"").common_name == user
    monitoring = x509.load_pem_x509_certificate(data["monitoring.crt"])
    assert "O=system:monitoring" in monitoring.subject.rfc4514_string()


def test_regeneration_only_on_new_inputs_or_near_expiry(
    cas: tuple[pki.CertKey, pki.CertKey],
) -> None:
    ca, proxy = cas
    facts = Facts(external_address="10.1.1.1")
    secret = kubernetes_certs.certs_secret(make(), facts, ca=ca, proxy_ca=proxy)
    annotations = secret["metadata"]["annotations"]
    digest = kubernetes_certs.inputs_digest(make(), facts)
    assert not kubernetes_certs.needs_regeneration(annotations, digest)
    moved = kubernetes_certs.inputs_digest(make(), Facts(external_address="10.1.1.2"))
    assert moved != digest and kubernetes_certs.needs_regeneration(annotations, moved)
    later = datetime.now(UTC) + timedelta(days=340)
    assert kubernetes_certs.needs_regeneration(annotations, digest, now=later)
    assert kubernetes_certs.needs_regeneration(None, digest)
    # The CA is an input by name only: a restart recomputes the same digest.
    assert kubernetes_certs.inputs_digest(make(), facts) == digest


# --- tenant bootstrap ---------------------------------------------------------------------------


def test_tenant_addons() -> None:
    cluster = make(
        service={"apiPort": 31443, "konnectivityPort": 31132},
        kubernetes={"images": {"coreDNS": "mirror.example/coredns:1"}},
    )
    objs = tenant_addons.render_tenant_addons(cluster, FACTS, b"CA PEM")
    assert objs == tenant_addons.render_tenant_addons(cluster, FACTS, b"CA PEM")
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    last = objs[-1]
    assert (last["kind"], last["metadata"]["name"]) == ("ConfigMap", "cluster-info")
    digest = last["metadata"]["annotations"][tenant_addons.DIGEST_ANNOTATION]
    other = tenant_addons.render_tenant_addons(make(), FACTS, b"CA PEM")
    assert other[-1]["metadata"]["annotations"][tenant_addons.DIGEST_ANNOTATION] != digest

    info = yaml.safe_load(last["data"]["kubeconfig"])
    assert info["clusters"][0]["cluster"]["server"] == "https://10.96.5.5:31443"
    assert base64.b64decode(info["clusters"][0]["cluster"]["certificate-authority-data"]) == (
        b"CA PEM"
    )
    assert by[("RoleBinding", "mothership:bootstrap-signer-clusterinfo")]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}
    ]
    approve = by[("ClusterRoleBinding", "mothership:node-autoapprove-bootstrap")]
    assert approve["subjects"][0]["name"] == "system:bootstrappers"
    assert approve["roleRef"]["name"].endswith(":nodeclient")
    assert by[("Service", "kube-dns")]["spec"]["clusterIP"] == "10.96.0.10"
    coredns = by[("Deployment", "coredns")]["spec"]["template"]["spec"]["containers"][0]
    assert coredns["image"] == "mirror.example/coredns:1"
    proxy = by[("DaemonSet", "kube-proxy")]["spec"]["template"]["spec"]["containers"][0]
    assert proxy["image"] == "registry.k8s.io/kube-proxy:v1.35.4"
    agent = by[("DaemonSet", "konnectivity-agent")]["spec"]["template"]["spec"]
    args = agent["containers"][0]["args"]
    assert "--proxy-server-host=10.96.5.5" in args and "--proxy-server-port=31132" in args
    token = agent["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "system:konnectivity-server"


def test_dns_service_follows_the_service_cidr() -> None:
    cluster = make(k0sConfig={"spec": {"network": {"serviceCIDR": "172.20.0.0/16"}}})
    objs = tenant_addons.render_tenant_addons(cluster, FACTS, b"CA")
    dns = next(o for o in objs if o["kind"] == "Service")
    assert dns["spec"]["clusterIP"] == "172.20.0.10"
