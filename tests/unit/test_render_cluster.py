"""Targeted properties of render_cluster that the golden files only show implicitly.

Each test states one rule (SANs sorted, node ports fixed, retention only on request, ...)
so a failing golden diff can be told apart from a broken rule.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import configmaps, etcd, names, statefulset
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts, RenderError, k0s_image, monitoring_images
from mothership.render.kubernetes_control_plane import render_control_plane
from mothership.webhooks.defaults import admission_patch

NS = "tenants"


def make(spec: dict[str, Any] | None = None, **meta: Any) -> Cluster:
    metadata = {"name": "demo", "namespace": NS, **meta}
    return Cluster.model_validate({"metadata": metadata, "spec": spec or {}})


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def k0s_yaml(objects: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = find(objects, "ConfigMap", "kmc-demo-config")
    return yaml.safe_load(config_map["data"]["K0SMOTRON_K0S_YAML"])


def controller(objects: list[dict[str, Any]]) -> dict[str, Any]:
    sts = find(objects, "StatefulSet", "kmc-demo")
    return sts["spec"]["template"]["spec"]["containers"][0]


# --- whole render ---------------------------------------------------------------------------


def test_render_is_deterministic_and_leaves_the_spec_alone() -> None:
    spec = {
        "replicas": 3,
        "service": {"type": "NodePort"},
        "monitoring": {"enabled": True},
        "k0sConfig": {"spec": {"api": {"sans": ["z.example", "a.example"]}}},
        "storage": {"etcd": {"defragJob": {"enabled": True}}},
    }
    cluster = make(spec)
    before = cluster.model_dump()
    first = render_cluster(cluster, Facts(external_address="192.0.2.1"))
    second = render_cluster(make(copy.deepcopy(spec)), Facts(external_address="192.0.2.1"))
    assert first == second
    assert [yaml.safe_dump(o, sort_keys=True) for o in first] == [
        yaml.safe_dump(o, sort_keys=True) for o in second
    ]
    assert cluster.model_dump() == before


def test_every_object_is_labelled_namespaced_and_left_for_the_controller_to_own() -> None:
    objects = render_cluster(make({"monitoring": {"enabled": True}}), Facts())
    for obj in objects:
        meta = obj["metadata"]
        assert obj["apiVersion"] and obj["kind"] and meta["name"]
        assert meta["namespace"] == NS
        component = meta["labels"]["app.kubernetes.io/component"]
        assert meta["labels"] == {**meta["labels"], **names.labels("demo", component)}
        assert "ownerReferences" not in meta
        assert names.HASH_ANNOTATION not in meta.get("annotations", {})


def test_selectors_are_the_immutable_subset_of_the_pod_labels() -> None:
    objects = render_cluster(make({"storage": {"type": "etcd"}}), Facts())
    for obj in objects:
        if obj["kind"] != "StatefulSet":
            continue
        selector = obj["spec"]["selector"]["matchLabels"]
        assert set(selector) == {"app", "cluster", "component"}
        pod_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert pod_labels.items() >= selector.items()


def test_objects_come_in_apply_order() -> None:
    kinds = [o["kind"] for o in render_cluster(make(), Facts(external_address="192.0.2.1"))]
    assert kinds == [
        "Service",
        "NetworkPolicy",
        "NetworkPolicy",
        "ConfigMap",
        "ConfigMap",
        "ConfigMap",
        "ConfigMap",
        "Service",
        "StatefulSet",
        "StatefulSet",
    ]
    assert kinds[-1] == "StatefulSet"


# --- config ---------------------------------------------------------------------------------


def test_sans_are_sorted_unique_and_cover_every_name() -> None:
    cluster = make(
        {
            "service": {"type": "LoadBalancer"},
            "k0sConfig": {"spec": {"api": {"sans": ["zz.example", "203.0.113.9"]}}},
        }
    )
    facts = Facts(external_address="203.0.113.9", service_cluster_ips=("10.96.0.50",))
    sans = k0s_yaml(render_cluster(cluster, facts))["spec"]["api"]["sans"]
    assert sans == sorted(set(sans))
    assert set(sans) == {
        "203.0.113.9",
        "10.96.0.50",
        "kmc-demo-lb",
        f"kmc-demo-lb.{NS}",
        f"kmc-demo-lb.{NS}.svc",
        f"kmc-demo-lb.{NS}.svc.cluster.local",
        "zz.example",
    }


def test_spec_address_wins_over_the_detected_one() -> None:
    cluster = make({"externalAddress": "api.example.com"})
    config = k0s_yaml(render_cluster(cluster, Facts(external_address="192.0.2.1")))
    assert config["spec"]["api"]["externalAddress"] == "api.example.com"
    assert "192.0.2.1" not in config["spec"]["api"]["sans"]


def test_user_config_is_kept_where_the_operator_has_no_say() -> None:
    user = {
        "apiVersion": "k0s.k0sproject.io/v1beta1",
        "kind": "ClusterConfig",
        "metadata": {"name": "k0s"},
        "spec": {
            "api": {"port": 1234, "externalAddress": "mine.example", "extraArgs": {"v": "4"}},
            "network": {"provider": "calico", "clusterDomain": "corp.local"},
            "telemetry": {"enabled": False},
        },
    }
    config = k0s_yaml(render_cluster(make({"k0sConfig": user}), Facts()))
    assert config["metadata"] == {"name": "k0s"}
    assert config["spec"]["network"] == {"provider": "calico", "clusterDomain": "corp.local"}
    assert config["spec"]["telemetry"] == {"enabled": False}
    assert config["spec"]["api"]["port"] == 30443  # the Service dictates the port
    assert config["spec"]["api"]["extraArgs"] == {
        "v": "4",
        # Secrets at rest sealed with the Cluster's own key (the user named no provider).
        "encryption-provider-config": "/etc/mothership/encryption/encryption-config.yaml",
        "encryption-provider-config-automatic-reload": "true",
    }
    # No address known to the operator: the user's own stays.
    assert config["spec"]["api"]["externalAddress"] == "mine.example"


def test_node_local_load_balancing_gets_no_external_address() -> None:
    user = {"spec": {"network": {"nodeLocalLoadBalancing": {"enabled": True}}}}
    config = k0s_yaml(render_cluster(make({"k0sConfig": user}), Facts(external_address="1.2.3.4")))
    assert "externalAddress" not in config["spec"]["api"]


def test_other_k0s_config_versions_are_refused() -> None:
    with pytest.raises(RenderError, match="apiVersion"):
        render_cluster(make({"k0sConfig": {"apiVersion": "k0s.k0sproject.io/v1beta2"}}), Facts())


def test_etcd_storage_points_k0s_at_the_etcd_service_with_its_client_cert() -> None:
    storage = k0s_yaml(render_cluster(make(), Facts()))["spec"]["storage"]
    external = storage["etcd"]["externalCluster"]
    assert storage["type"] == "etcd"
    assert external["endpoints"] == ["https://kmc-demo-etcd:2379"]
    assert external["etcdPrefix"] == "demo"
    assert external["clientCertFile"] == "/var/lib/k0s/pki/apiserver-etcd-client.crt"


def test_kine_url_goes_into_the_config_and_no_etcd_is_rendered() -> None:
    url = "postgres://u:p@db:5432/kine?sslmode=disable"
    objects = render_cluster(
        make({"storage": {"type": "kine", "kine": {"dataSourceURL": url}}}), Facts()
    )
    assert k0s_yaml(objects)["spec"]["storage"] == {"type": "kine", "kine": {"dataSource": url}}
    assert not [o for o in objects if "etcd" in o["metadata"]["name"]]


def _entrypoint_config(tmp_path: Any, objects: list, env: dict[str, str]) -> dict:
    """Run the entrypoint's own shell up to the NATS part, with /etc/k0s in tmp_path, and
    return the k0s config it wrote: the swap of Secret values into the config, for real."""
    text = find(objects, "ConfigMap", "kmc-demo-config")["data"]["K0SMOTRON_K0S_YAML"]
    script = find(objects, "ConfigMap", "kmc-entrypoint-demo-config")["data"][
        configmaps.ENTRYPOINT_KEY
    ]
    head = script[: script.index("# Embedded NATS")].replace("/etc/k0s", str(tmp_path))
    subprocess.run(
        ["sh", "-c", head],
        env={"PATH": os.environ["PATH"], "K0SMOTRON_K0S_YAML": text, **env},
        check=True,
    )
    return yaml.safe_load((tmp_path / "k0s.yaml").read_text())


@pytest.mark.skipif(shutil.which("awk") is None, reason="needs awk")
def test_kine_secret_url_is_swapped_in_by_the_entrypoint_intact(tmp_path: Any) -> None:
    spec = {"storage": {"type": "kine", "kine": {"dataSourceSecretName": "db-creds"}}}
    objects = render_cluster(make(spec), Facts())
    assert {"secretRef": {"name": "db-creds"}} in controller(objects)["envFrom"]
    text = find(objects, "ConfigMap", "kmc-demo-config")["data"]["K0SMOTRON_K0S_YAML"]
    assert f"'{configmaps.KINE_URL_PLACEHOLDER}'" in text
    nasty = "mysql://user:p'a&ss\\w|d#x@tcp(db:3306)/kine"
    config = _entrypoint_config(tmp_path, objects, {"K0SMOTRON_KINE_DATASOURCE_URL": nasty})
    assert config["spec"]["storage"]["kine"]["dataSource"] == nasty


@pytest.mark.skipif(shutil.which("awk") is None, reason="needs awk")
def test_an_etcd_datastore_reaches_k0s_from_the_tenant_secret(tmp_path: Any) -> None:
    spec = {"storage": {"type": "etcd", "etcd": {"dataStoreRef": {"name": "shared"}}}}
    objects = render_cluster(make(spec), Facts())
    pod = controller(objects)
    secret = "demo-datastore"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["env"] if "valueFrom" in e}
    assert refs["MOTHERSHIP_ETCD_SERVERS"] == {"name": secret, "key": "endpoints"}
    assert refs["MOTHERSHIP_ETCD_PREFIX"] == {"name": secret, "key": "prefix"}
    assert all(source.get("secretRef") is None for source in pod["envFrom"])
    volumes = find(objects, "StatefulSet", "kmc-demo")["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == "datastore-ca")
    assert volume["secret"] == {
        "secretName": secret,
        "items": [{"key": k, "path": k} for k in ("ca.crt", "tls.crt", "tls.key")],
    }
    mount = {"name": "datastore-ca", "mountPath": "/etc/mothership/datastore", "readOnly": True}
    assert mount in pod["volumeMounts"]
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "StatefulSet"] == ["kmc-demo"]

    endpoints = "https://etcd-0.example.net:2379,https://etcd-1.example.net:2379"
    env = {"MOTHERSHIP_ETCD_SERVERS": endpoints, "MOTHERSHIP_ETCD_PREFIX": "/k0s_team_demo_0a1b"}
    config = _entrypoint_config(tmp_path, objects, env)
    assert config["spec"]["storage"] == {
        "type": "etcd",
        "etcd": {
            "externalCluster": {
                "endpoints": [endpoints],
                "etcdPrefix": "/k0s_team_demo_0a1b",
                "caFile": "/etc/mothership/datastore/ca.crt",
                "clientCertFile": "/etc/mothership/datastore/tls.crt",
                "clientKeyFile": "/etc/mothership/datastore/tls.key",
            }
        },
    }
    # Only etcd's root may compact: the tenant's API server must not try.
    assert config["spec"]["api"]["extraArgs"]["etcd-compaction-interval"] == "0"


def test_endpoint_manifest_appears_once_the_address_is_known() -> None:
    without = render_cluster(make(), Facts())
    assert not [o for o in without if o["metadata"]["name"] == "kmc-demo-endpoint"]
    with_address = render_cluster(make(), Facts(external_address="192.0.2.5"))
    manifest = yaml.safe_load(
        find(with_address, "ConfigMap", "kmc-demo-endpoint")["data"]["endpoint.yaml"]
    )
    assert manifest["data"] == {"apiServerHost": "192.0.2.5", "apiServerPort": "30443"}
    mounts = {m["name"]: m["mountPath"] for m in controller(with_address)["volumeMounts"]}
    assert mounts["kmc-demo-endpoint"] == "/var/lib/k0s/manifests/kmc-demo-endpoint"


def test_manifests_k0smotron_stored_in_the_spec_are_not_mounted_twice() -> None:
    stored = {"name": "kmc-demo-endpoint", "configMap": {"name": "kmc-demo-endpoint"}}
    objects = render_cluster(make({"manifests": [stored]}), Facts(external_address="192.0.2.5"))
    names_ = [
        v["name"]
        for v in find(objects, "StatefulSet", "kmc-demo")["spec"]["template"]["spec"]["volumes"]
    ]
    assert names_.count("kmc-demo-endpoint") == 1


# --- entrypoint -----------------------------------------------------------------------------


def test_controller_flags_keep_the_users_and_add_ours_only_when_missing() -> None:
    cluster = make({"controlPlaneFlags": ["--config=/custom.yaml", "--debug"]})
    flags = configmaps.controller_flags(cluster.spec)
    assert flags == ["--config=/custom.yaml", "--debug", "--enable-dynamic-config"]
    script = configmaps.entrypoint_script(make({"controlPlaneFlags": ["--x=a b"]}).spec)
    assert "exec k0s controller '--x=a b' --config=/etc/k0s/k0s.yaml" in script


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
@pytest.mark.parametrize(
    "spec",
    [{}, {"service": {"apiPort": 443}}, {"storage": {"type": "nats"}, "replicas": 3}],
)
def test_entrypoint_is_valid_shell(spec: dict[str, Any]) -> None:
    script = configmaps.entrypoint_script(make(spec).spec)
    subprocess.run(["sh", "-n", "-c", script], check=True)
    assert ("setcap" in script) == ("apiPort" in spec.get("service", {}))


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_etcd_scripts_are_valid_shell() -> None:
    sts = etcd.etcd_statefulset(make({"replicas": 3}), Facts())
    pod = sts["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        script = max(container["args"], key=len)  # the rest are "-c" and flags
        subprocess.run(["bash", "-n", "-c", script], check=True)


# --- services -------------------------------------------------------------------------------


def test_node_port_service_pins_the_node_ports() -> None:
    objects = render_cluster(make({"service": {"type": "NodePort"}}), Facts())
    service = find(objects, "Service", "kmc-demo-nodeport")
    assert service["spec"]["type"] == "NodePort"
    assert {p["name"]: p["nodePort"] for p in service["spec"]["ports"]} == {
        "api": 30443,
        "konnectivity": 30132,
    }


@pytest.mark.parametrize(
    ("kind", "name"), [("ClusterIP", "kmc-demo"), ("LoadBalancer", "kmc-demo-lb")]
)
def test_other_service_types_leave_node_ports_to_kubernetes(kind: str, name: str) -> None:
    service = find(render_cluster(make({"service": {"type": kind}}), Facts()), "Service", name)
    assert [p["name"] for p in service["spec"]["ports"]] == ["api", "konnectivity"]
    assert all("nodePort" not in p for p in service["spec"]["ports"])
    assert "externalTrafficPolicy" not in service["spec"]


def test_service_fields_parked_by_k0smotron_conversion_are_honoured() -> None:
    annotations = {
        "k0smotron.io/conversion-dropped-service.annotations": '{"lb.example/x": "1"}',
        "k0smotron.io/conversion-dropped-service.loadBalancerClass": '"example/lb"',
        "k0smotron.io/conversion-dropped-service.externalTrafficPolicy": '"Local"',
        "k0smotron.io/conversion-dropped-service.labels": "not json",
    }
    cluster = make({"service": {"type": "LoadBalancer"}}, annotations=annotations)
    service = find(render_cluster(cluster, Facts()), "Service", "kmc-demo-lb")
    assert service["metadata"]["annotations"] == {"lb.example/x": "1"}
    assert service["spec"]["loadBalancerClass"] == "example/lb"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert service["metadata"]["labels"] == names.labels("demo", "control-plane")


def test_user_service_labels_cannot_rename_the_component() -> None:
    cluster = make({"service": {"labels": {"component": "mine", "team": "a"}}})
    labels = find(render_cluster(cluster, Facts()), "Service", "kmc-demo")["metadata"]["labels"]
    assert labels["component"] == "control-plane"
    assert labels["team"] == "a"


# --- statefulset ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "image"),
    [
        ("v1.30.1+k0s.0", "quay.io/k0sproject/k0s:v1.30.1-k0s.0"),
        ("v1.30.1-k0s.2", "quay.io/k0sproject/k0s:v1.30.1-k0s.2"),
        ("v1.30.1", "quay.io/k0sproject/k0s:v1.30.1-k0s.0"),
        (None, "quay.io/k0sproject/k0s:v1.29.0-k0s.1"),
    ],
)
def test_image_tag_comes_from_the_version(version: str | None, image: str) -> None:
    spec: dict[str, Any] = {"version": version} if version else {}
    facts = Facts(k0s_version_default="v1.29.0+k0s.1")
    objects = render_cluster(make(spec), facts)
    assert controller(objects)["image"] == image
    sts = find(objects, "StatefulSet", "kmc-demo")
    assert sts["spec"]["template"]["spec"]["initContainers"][0]["image"] == image


def test_without_a_webhook_or_a_record_the_version_is_the_webhooks_default() -> None:
    """One default: a Cluster that reached the controller without admission (no webhook
    configured) and has no recorded version runs what the webhook would have written."""
    obj = {"apiVersion": "k0smotron.io/v1beta2", "kind": "Cluster", "metadata": {"name": "demo"}}
    ops = admission_patch({**obj, "spec": {}})
    webhook = next(op["value"] for op in ops if op["path"] == "/spec/version")
    image = controller(render_cluster(make({}), Facts()))["image"]
    assert image == f"quay.io/k0sproject/k0s:{webhook}"


def test_custom_repository_keeps_the_derived_tag() -> None:
    cluster = make({"image": "registry.example/k0s", "version": "v1.31.2+k0s.0"})
    assert k0s_image(cluster.spec, Facts()) == "registry.example/k0s:v1.31.2-k0s.0"


@pytest.mark.parametrize(
    ("persistence", "retained"),
    [
        ({"type": "pvc", "autoDeletePVCs": True, "persistentVolumeClaim": {"spec": {}}}, False),
        ({"type": "pvc", "persistentVolumeClaim": {"spec": {}}}, True),
        ({"type": "emptyDir", "autoDeletePVCs": True}, True),
    ],
)
def test_claims_are_deleted_with_the_cluster_only_on_request(
    persistence: dict[str, Any], retained: bool
) -> None:
    sts = find(
        render_cluster(make({"persistence": persistence}), Facts()), "StatefulSet", "kmc-demo"
    )
    policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy")
    assert policy == (None if retained else {"whenDeleted": "Delete"})


def test_pvc_persistence_uses_a_claim_template_named_for_the_cluster() -> None:
    persistence = {"type": "pvc", "persistentVolumeClaim": {"spec": {"storageClassName": "x"}}}
    sts = find(
        render_cluster(make({"persistence": persistence}), Facts()), "StatefulSet", "kmc-demo"
    )
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["kmc-demo"]
    pod = sts["spec"]["template"]["spec"]
    assert "kmc-demo" not in [v["name"] for v in pod["volumes"]]
    init_mounts = pod["initContainers"][0]["volumeMounts"]
    assert {"name": "kmc-demo", "mountPath": "/var/lib/k0s"} in init_mounts


@pytest.mark.parametrize(
    "persistence", [{"type": "pvc"}, {"type": "hostPath"}], ids=["pvc", "hostPath"]
)
def test_persistence_without_its_details_is_an_error(persistence: dict[str, Any]) -> None:
    with pytest.raises(RenderError):
        render_cluster(make({"persistence": persistence}), Facts())


def test_pod_security_and_scheduling_basics() -> None:
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "X"}]
    cluster = make(
        {
            "serviceAccount": "cp",
            "topologySpreadConstraints": spread,
            "resources": {"requests": {"cpu": "1"}},
        }
    )
    objects = render_cluster(cluster, Facts())
    for name in ("kmc-demo", "kmc-demo-etcd"):
        pod = find(objects, "StatefulSet", name)["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "cp"
        assert pod["topologySpreadConstraints"] == spread
        terms = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert [t["podAffinityTerm"]["topologyKey"] for t in terms] == [
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        ]
    assert controller(objects)["resources"] == {"requests": {"cpu": "1"}}


def test_certs_init_copies_the_pki_from_the_referenced_secrets() -> None:
    refs = [{"type": "ca", "name": "my-ca"}, {"type": "sa"}, {"type": "etcd-peer", "name": "x"}]
    sts = statefulset.statefulset(make({"certificateRefs": refs}), Facts())
    pod = sts["spec"]["template"]["spec"]
    certs = next(v for v in pod["volumes"] if v["name"] == "certs")
    secrets = {s["secret"]["name"]: s["secret"]["items"] for s in certs["projected"]["sources"]}
    assert list(secrets) == ["my-ca", "demo-sa", "demo-apiserver-etcd-client"]
    assert secrets["demo-sa"] == [
        {"key": "tls.crt", "path": "sa.pub"},
        {"key": "tls.key", "path": "sa.key"},
    ]
    init = pod["initContainers"][0]
    assert init["name"] == "certs-init"
    assert "/var/lib/k0s/pki" in init["command"][-1]


def test_mounts_get_stable_volume_names_and_secrets_are_read_only() -> None:
    mounts = [
        {"path": "/etc/extra", "secret": {"secretName": "s"}},
        {"path": "/opt/My_Files.d", "hostPath": {"path": "/srv"}},
    ]
    sts = statefulset.statefulset(make({"mounts": mounts}), Facts())
    volume_mounts = controller([sts])["volumeMounts"]
    assert {"name": "etc-extra", "mountPath": "/etc/extra", "readOnly": True} in volume_mounts
    odd = statefulset.mount_volume_name("/opt/My_Files.d")
    assert odd.startswith("opt-my-files-d-") and len(odd) == len("opt-my-files-d-") + 5
    assert {"name": odd, "mountPath": "/opt/My_Files.d"} in volume_mounts
    volumes = sts["spec"]["template"]["spec"]["volumes"]
    assert {"name": odd, "hostPath": {"path": "/srv"}} in volumes


def test_monitoring_adds_sidecars_and_scrape_annotations() -> None:
    sts = find(
        render_cluster(make({"monitoring": {"enabled": True}}), Facts()), "StatefulSet", "kmc-demo"
    )
    template = sts["spec"]["template"]
    assert [c["name"] for c in template["spec"]["containers"]] == [
        "controller",
        "monitoring-agent",
        "monitoring-proxy",
    ]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "8090"


def test_nats_storage_runs_members_in_parallel_behind_a_headless_service() -> None:
    objects = render_cluster(make({"replicas": 3, "storage": {"type": "nats"}}), Facts())
    sts = find(objects, "StatefulSet", "kmc-demo")
    assert sts["spec"]["serviceName"] == "kmc-demo-nats"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    headless = find(objects, "Service", "kmc-demo-nats")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    source = k0s_yaml(objects)["spec"]["storage"]["kine"]["dataSource"]
    assert source == "nats://?serverConfig=/etc/nats/nats.conf&replicas=3"


# --- etcd -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cp", "members"), [(0, 1), (1, 1), (2, 3), (3, 3), (4, 5), (5, 5)])
def test_etcd_member_count_is_odd(cp: int, members: int) -> None:
    sts = find(render_cluster(make({"replicas": cp}), Facts()), "StatefulSet", "kmc-demo-etcd")
    assert sts["spec"]["replicas"] == members
    env = {
        e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ETCD_INITIAL_CLUSTER"].count("=https://") == members


def test_controller_decides_etcd_growth_step_by_step() -> None:
    facts = Facts(etcd_replicas=2, etcd_dns_check_image="quay.io/k0sproject/k0s:v1.28.0-k0s.0")
    sts = find(render_cluster(make({"replicas": 3}), facts), "StatefulSet", "kmc-demo-etcd")
    assert sts["spec"]["replicas"] == 2
    assert (
        sts["spec"]["template"]["spec"]["initContainers"][0]["image"] == facts.etcd_dns_check_image
    )


def test_defrag_job_only_when_enabled_and_not_selected_by_the_etcd_service() -> None:
    assert not [o for o in render_cluster(make(), Facts()) if o["kind"] == "CronJob"]
    objects = render_cluster(make({"storage": {"etcd": {"defragJob": {"enabled": True}}}}), Facts())
    job = find(objects, "CronJob", "kmc-demo-defrag")
    assert job["spec"]["schedule"] == "0 12 * * *"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "etcd"
    pod_labels = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    selector = find(objects, "Service", "kmc-demo-etcd")["spec"]["selector"]
    assert not pod_labels.items() >= selector.items()


def test_etcd_claims_are_deleted_only_on_request() -> None:
    kept = find(render_cluster(make(), Facts()), "StatefulSet", "kmc-demo-etcd")
    assert "persistentVolumeClaimRetentionPolicy" not in kept["spec"]
    spec = {"storage": {"etcd": {"autoDeletePVCs": True}}}
    gone = find(render_cluster(make(spec), Facts()), "StatefulSet", "kmc-demo-etcd")
    assert gone["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete"}


# --- ingress --------------------------------------------------------------------------------

INGRESS = {"apiHost": "api.example.com", "konnectivityHost": "konn.example.com"}


def test_old_k0s_behind_ingress_gets_our_konnectivity_agent() -> None:
    objects = render_cluster(make({"version": "v1.34.1+k0s.0", "ingress": INGRESS}), Facts())
    find(objects, "ConfigMap", "kmc-demo-ingress-konnectivity")
    config = k0s_yaml(objects)
    assert config["spec"]["konnectivity"]["externalAddress"] == "konn.example.com"
    assert config["spec"]["api"]["externalAddress"] == "api.example.com:443"
    assert "--disable-components=endpoint-reconciler" in configmaps.controller_flags(
        make({"ingress": INGRESS}).spec
    )


def test_new_k0s_behind_ingress_points_its_own_agent_at_the_ingress() -> None:
    stored = {"name": "konnectivity", "configMap": {"name": "kmc-demo-ingress-konnectivity"}}
    spec = {"version": "v1.35.1+k0s.0", "ingress": INGRESS, "manifests": [stored]}
    objects = render_cluster(make(spec), Facts())
    assert not [o for o in objects if o["metadata"]["name"] == "kmc-demo-ingress-konnectivity"]
    config = k0s_yaml(objects)
    assert config["spec"]["konnectivity"]["externalAddress"] == "konn.example.com:443"
    volumes = [v["name"] for v in controller(objects)["volumeMounts"]]
    assert "konnectivity" not in volumes
    assert "kmc-demo-ingress" in volumes


def test_ingress_object_only_when_deploy() -> None:
    spec = {"version": "v1.35.1", "ingress": {**INGRESS, "deploy": False}}
    objects = render_cluster(make(spec), Facts())
    assert not [o for o in objects if o["kind"] == "Ingress"]
    find(objects, "ConfigMap", "kmc-demo-ingress")


def test_haproxy_bundle_uses_the_service_cidr_of_the_hosted_cluster() -> None:
    user = {"spec": {"network": {"serviceCIDR": "10.128.0.0/16"}}}
    spec = {"version": "v1.35.1", "ingress": INGRESS, "k0sConfig": user}
    bundle = find(render_cluster(make(spec), Facts()), "ConfigMap", "kmc-demo-ingress")
    service = yaml.safe_load(bundle["data"]["3_kube-service.yaml"])
    assert service["spec"]["clusterIP"] == "10.128.0.1"


def test_k0s_image_repository_setting_replaces_only_the_default_repository() -> None:
    mirror = Facts(k0s_image_repository="localhost/mothership/k0s")
    default = make({"version": "v1.33.13+k0s.0"})
    assert k0s_image(default.spec, mirror) == "localhost/mothership/k0s:v1.33.13-k0s.0"
    assert k0s_image(default.spec, Facts()) == "quay.io/k0sproject/k0s:v1.33.13-k0s.0"
    objects = render_cluster(default, mirror)
    pod = find(objects, "StatefulSet", "kmc-demo")["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["containers"] + pod["initContainers"]}
    assert images == {"localhost/mothership/k0s:v1.33.13-k0s.0"}
    assert default.spec.image == "quay.io/k0sproject/k0s"  # the spec is not touched
    own = make({"version": "v1.33.13+k0s.0", "image": "registry.example/k0s"})
    assert k0s_image(own.spec, mirror) == "registry.example/k0s:v1.33.13-k0s.0"
    # A repository that merely starts like the default one is the user's own.
    similar = make({"version": "v1.33.13", "image": "quay.io/k0sproject/k0s-fips"})
    assert k0s_image(similar.spec, mirror) == "quay.io/k0sproject/k0s-fips:v1.33.13-k0s.0"


def test_monitoring_image_settings_replace_only_the_default_images() -> None:
    local = Facts(
        external_address="192.0.2.10",
        monitoring_prometheus_image="localhost/mothership/prometheus:v3.16.0",
        monitoring_proxy_image="localhost/mothership/nginx:1.22.1",
    )
    kept = make({"monitoring": {"enabled": True}})
    upstream = make(
        {"distribution": "kubernetes", "version": "v1.35.4", "monitoring": {"enabled": True}}
    )
    for objects in (render_cluster(kept, local), render_control_plane(upstream, local)):
        pod = find(objects, "StatefulSet", "kmc-demo")["spec"]["template"]["spec"]
        images = {c["name"]: c["image"] for c in pod["containers"]}
        assert images["monitoring-agent"] == "localhost/mothership/prometheus:v3.16.0"
        assert images["monitoring-proxy"] == "localhost/mothership/nginx:1.22.1"
    assert kept.spec.monitoring.prometheus_image == "quay.io/k0sproject/prometheus:v2.44.0"
    own = make(
        {
            "monitoring": {
                "enabled": True,
                "prometheusImage": "reg.example/prom:v3",
                "proxyImage": "reg.example/nginx:1",
            }
        }
    )
    assert monitoring_images(own.spec, local) == ("reg.example/prom:v3", "reg.example/nginx:1")
    assert monitoring_images(kept.spec, Facts()) == (
        "quay.io/k0sproject/prometheus:v2.44.0",
        "nginx:1.19.10",
    )


def test_k0s_seals_secrets_with_the_clusters_key_unless_the_user_names_a_provider() -> None:
    objects = render_cluster(make(), Facts())
    sts = find(objects, "StatefulSet", "kmc-demo")
    assert sts["metadata"]["annotations"]["mothership.io/encryption-key-secret"] == (
        "kmc-demo-encryption"
    )
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["encryption"]["secret"]["secretName"] == "kmc-demo-encryption"
    mount = {"name": "encryption", "mountPath": "/etc/mothership/encryption", "readOnly": True}
    assert mount in controller(objects)["volumeMounts"]

    own = {"spec": {"api": {"extraArgs": {"encryption-provider-config": "/mine/enc.yaml"}}}}
    objects = render_cluster(make({"k0sConfig": own}), Facts())
    text = find(objects, "ConfigMap", "kmc-demo-config")["data"]["K0SMOTRON_K0S_YAML"]
    assert yaml.safe_load(text)["spec"]["api"]["extraArgs"] == {
        "encryption-provider-config": "/mine/enc.yaml"
    }
    sts = find(objects, "StatefulSet", "kmc-demo")
    assert "mothership.io/encryption-key-secret" not in (sts["metadata"].get("annotations") or {})
    assert "encryption" not in {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
