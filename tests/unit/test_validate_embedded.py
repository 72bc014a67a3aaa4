"""Admission rules for what a Cluster embeds (mothership.webhooks.validate_embedded).

Every rule has a bad case, refused with the exact field path (in the apiVersion written), and a
neighbouring good case that passes. Pure functions: no cluster, no server.
"""

from __future__ import annotations

from typing import Any

import pytest

from mothership.api.k0smotron import v1beta2
from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render.etcd import etcd_statefulset
from mothership.render.facts import Facts
from mothership.webhooks.validate import validate
from mothership.webhooks.validate_embedded import (
    ETCD_MANAGED_FLAGS,
    cron_problem,
    parse_image,
)

V1 = "k0smotron.io/v1beta1"
V2 = "k0smotron.io/v1beta2"
HASH = "a" * 64


def cluster(spec: dict[str, Any], version: str = V2) -> dict[str, Any]:
    return {
        "apiVersion": version,
        "kind": "Cluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": spec,
    }


def errors(spec: dict[str, Any], version: str = V2) -> dict[str, str]:
    """path -> message of every error (the last one per path)."""
    return {e.path: e.message for e in validate(cluster(spec, version)).errors}


def kine(url: str) -> dict[str, Any]:
    return {"storage": {"type": "kine", "kine": {"dataSourceURL": url}}}


def etcd(**fields: Any) -> dict[str, Any]:
    return {"storage": {"etcd": fields}}


def tsc(**fields: Any) -> dict[str, Any]:
    base = {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
    return {"topologySpreadConstraints": [{**base, **fields}]}


def patch(kind: str, content: str) -> dict[str, Any]:
    target = {"kind": "StatefulSet", "component": "control-plane"}
    return {"patches": [{"target": target, "patch": {"type": kind, "content": content}}]}


def pvc(claim: dict[str, Any]) -> dict[str, Any]:
    return {"persistence": {"type": "pvc", "persistentVolumeClaim": {"spec": claim}}}


def network(**fields: Any) -> dict[str, Any]:
    return {"k0sConfig": {"spec": {"network": fields}}}


CM = {"configMap": {"name": "x"}}

# (spec, apiVersion, path of the error)
BAD: dict[str, tuple[dict[str, Any], str, str]] = {
    # 1. kine URL
    "kine not a url": (kine("not a url"), V2, "spec.storage.kine.dataSourceURL"),
    "kine unknown scheme": (kine("foo://x/y"), V2, "spec.storage.kine.dataSourceURL"),
    "kine v1beta1": ({"kineDataSourceURL": "foo://x/y"}, V1, "spec.kineDataSourceURL"),
    # 2. externalAddress
    "address url": ({"externalAddress": "http://a b/"}, V2, "spec.externalAddress"),
    "address port": ({"externalAddress": "host:443"}, V2, "spec.externalAddress"),
    # 3. mounts
    "mount relative": ({"mounts": [{"path": "etc/x", **CM}]}, V2, "spec.mounts[0].path"),
    "mount dotdot": ({"mounts": [{"path": "/a/../b", **CM}]}, V2, "spec.mounts[0].path"),
    "mount no source": ({"mounts": [{"path": "/a"}]}, V2, "spec.mounts[0]"),
    "mount two sources": (
        {"mounts": [{"path": "/a", **CM, "emptyDir": {}}]},
        V2,
        "spec.mounts[0]",
    ),
    "mount twice": (
        {"mounts": [{"path": "/a", **CM}, {"path": "/a/", **CM}]},
        V2,
        "spec.mounts[1].path",
    ),
    # 4. resources
    "cpu lots": ({"resources": {"requests": {"cpu": "lots"}}}, V2, "spec.resources.requests.cpu"),
    "negative": ({"resources": {"limits": {"memory": "-1Gi"}}}, V2, "spec.resources.limits.memory"),
    "request over limit": (
        {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}},
        V2,
        "spec.resources.requests.memory",
    ),
    "etcd resources": (
        etcd(resources={"limits": {"cpu": "1 core"}}),
        V2,
        "spec.storage.etcd.resources.limits.cpu",
    ),
    "etcd resources v1beta1": (
        {"etcd": {"resources": {"limits": {"cpu": "1 core"}}}},
        V1,
        "spec.etcd.resources.limits.cpu",
    ),
    # 5. topology spread constraints
    "tsc maxSkew 0": (tsc(maxSkew=0), V2, "spec.topologySpreadConstraints[0].maxSkew"),
    "tsc maxSkew str": (tsc(maxSkew="1"), V2, "spec.topologySpreadConstraints[0].maxSkew"),
    "tsc no key": (tsc(topologyKey=""), V2, "spec.topologySpreadConstraints[0].topologyKey"),
    "tsc when": (
        tsc(whenUnsatisfiable="Never"),
        V2,
        "spec.topologySpreadConstraints[0].whenUnsatisfiable",
    ),
    "tsc minDomains 0": (tsc(minDomains=0), V2, "spec.topologySpreadConstraints[0].minDomains"),
    "tsc minDomains anyway": (
        tsc(minDomains=2, whenUnsatisfiable="ScheduleAnyway"),
        V2,
        "spec.topologySpreadConstraints[0].minDomains",
    ),
    "tsc labels": (
        tsc(labelSelector={"matchLabels": {"a": 1}}),
        V2,
        "spec.topologySpreadConstraints[0].labelSelector.matchLabels.a",
    ),
    "tsc operator": (
        tsc(labelSelector={"matchExpressions": [{"key": "a", "operator": "Is", "values": ["b"]}]}),
        V2,
        "spec.topologySpreadConstraints[0].labelSelector.matchExpressions[0].operator",
    ),
    "tsc In without values": (
        tsc(labelSelector={"matchExpressions": [{"key": "a", "operator": "In"}]}),
        V2,
        "spec.topologySpreadConstraints[0].labelSelector.matchExpressions[0].values",
    ),
    "tsc Exists with values": (
        tsc(
            labelSelector={
                "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]
            }
        ),
        V2,
        "spec.topologySpreadConstraints[0].labelSelector.matchExpressions[0].values",
    ),
    "tsc policy": (
        tsc(nodeTaintsPolicy="honor"),
        V2,
        "spec.topologySpreadConstraints[0].nodeTaintsPolicy",
    ),
    "tsc duplicate": (
        {"topologySpreadConstraints": tsc()["topologySpreadConstraints"] * 2},
        V2,
        "spec.topologySpreadConstraints[1]",
    ),
    # 6. patches
    "patch not yaml": (patch("merge", "a: [b"), V2, "spec.patches[0].patch.content"),
    "json patch object": (patch("json", '{"op": "add"}'), V2, "spec.patches[0].patch.content"),
    "json patch no path": (
        patch("json", '[{"op": "remove"}]'),
        V2,
        "spec.patches[0].patch.content",
    ),
    "merge patch list": (patch("merge", "[1, 2]"), V2, "spec.patches[0].patch.content"),
    "strategic patch str": (patch("strategic", "hello"), V2, "spec.patches[0].patch.content"),
    # 7. control plane flags
    "flag words": ({"controlPlaneFlags": ["hello world"]}, V2, "spec.controlPlaneFlags[0]"),
    "flag words v1beta1": (
        {"controllerPlaneFlags": ["--debug=true", "hello world", "x"]},
        V1,
        "spec.controllerPlaneFlags[2]",
    ),
    # 8. etcd args
    "etcd data-dir": (etcd(args=["--data-dir=/tmp"]), V2, "spec.storage.etcd.args[0]"),
    "etcd name spaced": (
        etcd(args=["--snapshot-count=5", "--name", "x"]),
        V2,
        "spec.storage.etcd.args[1]",
    ),
    "etcd single dash": (etcd(args=["-wal-dir=/w"]), V2, "spec.storage.etcd.args[0]"),
    "etcd not a flag": (etcd(args=["quota"]), V2, "spec.storage.etcd.args[0]"),
    "etcd args v1beta1": ({"etcd": {"args": ["--cert-file=/c"]}}, V1, "spec.etcd.args[0]"),
    # 9. images
    "image space": ({"image": "my image"}, V2, "spec.image"),
    "image with tag": ({"image": "quay.io/k0sproject/k0s:v1.30.1-k0s.0"}, V2, "spec.image"),
    "etcd image": (etcd(image="my image:1"), V2, "spec.storage.etcd.image"),
    "etcd image upper": (etcd(image="Quay.io/K0s/Etcd:v3"), V2, "spec.storage.etcd.image"),
    "etcd image v1beta1": ({"etcd": {"image": "my image:1"}}, V1, "spec.etcd.image"),
    "defrag image": (
        etcd(defragJob={"image": "x:bad tag"}),
        V2,
        "spec.storage.etcd.defragJob.image",
    ),
    "monitoring image": (
        {"monitoring": {"proxyImage": "nginx:"}},
        V2,
        "spec.monitoring.proxyImage",
    ),
    "kubernetes image": (
        {"distribution": "kubernetes", "kubernetes": {"images": {"apiServer": "a@sha256:12"}}},
        V2,
        "spec.kubernetes.images.apiServer",
    ),
    # 10. cron
    "cron words": (
        etcd(defragJob={"schedule": "daily"}),
        V2,
        "spec.storage.etcd.defragJob.schedule",
    ),
    "cron range": (
        etcd(defragJob={"schedule": "0 24 * * *"}),
        V2,
        "spec.storage.etcd.defragJob.schedule",
    ),
    "cron tz": (
        {"etcd": {"defragJob": {"schedule": "CRON_TZ=UTC 0 12 * * *"}}},
        V1,
        "spec.etcd.defragJob.schedule",
    ),
    # 11. manifests (core/v1 Volumes)
    "manifest no name": ({"manifests": [CM]}, V2, "spec.manifests[0].name"),
    "manifest bad name": (
        {"manifests": [{"name": "My_Stack", **CM}]},
        V2,
        "spec.manifests[0].name",
    ),
    "manifest no source": ({"manifests": [{"name": "a"}]}, V2, "spec.manifests[0]"),
    "manifest duplicate": (
        {"manifests": [{"name": "a", **CM}, {"name": "a", **CM}]},
        V2,
        "spec.manifests[1].name",
    ),
    # 12. network CIDRs with k0s
    "service cidr": (
        network(serviceCIDR="10.96.0.0"),
        V2,
        "spec.k0sConfig.spec.network.serviceCIDR",
    ),
    "pod cidr": (network(podCIDR="10.244.0.1/16"), V2, "spec.k0sConfig.spec.network.podCIDR"),
    # 13. PVC claim templates
    "pvc access mode": (
        pvc({"accessModes": ["ReadWriteOne"]}),
        V2,
        "spec.persistence.persistentVolumeClaim.spec.accessModes[0]",
    ),
    "pvc storage": (
        pvc({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "ten"}}}),
        V2,
        "spec.persistence.persistentVolumeClaim.spec.resources.requests.storage",
    ),
    "pvc limit": (
        pvc({"accessModes": ["ReadWriteOnce"], "resources": {"limits": {"storage": "x"}}}),
        V2,
        "spec.persistence.persistentVolumeClaim.spec.resources.limits.storage",
    ),
}

GOOD: dict[str, tuple[dict[str, Any], str]] = {
    "kine postgres": (kine("postgres://u:p@db:5432/kine?sslmode=disable"), V2),
    "kine mysql dsn": (kine("mysql://u:p@tcp(db:3306)/kine"), V2),
    "kine sqlite": (kine("sqlite:///data/kine.db?_journal=WAL"), V2),
    "kine etcd": (kine("https://etcd:2379"), V2),
    "kine empty": (kine(""), V2),
    "kine v1beta1": ({"kineDataSourceURL": "nats://nats:4222"}, V1),
    "address dns": ({"externalAddress": "api.example.com"}, V2),
    "address ipv4": ({"externalAddress": "192.0.2.10"}, V2),
    "address ipv6": ({"externalAddress": "2001:db8::1"}, V2),
    "mounts": (
        {"mounts": [{"path": "/etc/a", **CM}, {"path": "/var/b", "hostPath": {"path": "/x"}}]},
        V2,
    ),
    "resources": (
        {
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi", "hugepages-2Mi": 0},
                "limits": {"cpu": 1, "memory": "1073741824", "nvidia.com/gpu": "1"},
            }
        },
        V2,
    ),
    "etcd resources": (etcd(resources={"requests": {"cpu": "0.5"}, "limits": {"cpu": "1e3"}}), V2),
    "tsc full": (
        tsc(
            minDomains=2,
            nodeAffinityPolicy="Honor",
            nodeTaintsPolicy="Ignore",
            labelSelector={
                "matchLabels": {"app": "x"},
                "matchExpressions": [
                    {"key": "a", "operator": "In", "values": ["b"]},
                    {"key": "c", "operator": "DoesNotExist"},
                ],
            },
        ),
        V2,
    ),
    "tsc two keys": (
        {
            "topologySpreadConstraints": [
                *tsc()["topologySpreadConstraints"],
                *tsc(topologyKey="host", whenUnsatisfiable="ScheduleAnyway")[
                    "topologySpreadConstraints"
                ],
            ]
        },
        V2,
    ),
    "json patch": (patch("json", '[{"op": "add", "path": "/x", "value": 1}]'), V2),
    "merge patch yaml": (patch("merge", "metadata:\n  labels: {a: b}\n"), V2),
    "strategic patch": (patch("strategic", '{"spec": {"replicas": 1}}'), V2),
    "flags": ({"controlPlaneFlags": ["--debug", "--disable-components", "metrics-server"]}, V2),
    "flags v1beta1": ({"controllerPlaneFlags": ["--a=b c", "-v=4"]}, V1),
    "etcd args": (
        etcd(args=["--quota-backend-bytes=8589934592", "--auto-compaction-retention", "1h"]),
        V2,
    ),
    "images": (
        {
            "image": "registry.local:5000/mirror/k0s",
            "monitoring": {"proxyImage": f"nginx:1.27@sha256:{HASH}"},
            **etcd(image="localhost/etcd_x__y.z-w:v3.5", defragJob={"image": "ghcr.io/a/b"}),
        },
        V2,
    ),
    "kubernetes images": (
        {"distribution": "kubernetes", "kubernetes": {"images": {"kine": "rancher/kine:v0.1"}}},
        V2,
    ),
    "cron": (etcd(defragJob={"schedule": "*/15 0-6,22 1 jan-mar,DEC mon-fri"}), V2),
    "cron descriptor": ({"etcd": {"defragJob": {"schedule": "@weekly"}}}, V1),
    "manifests": ({"manifests": [{"name": "addons", **CM}, {"name": "s", "secret": {}}]}, V2),
    "cidrs": (network(serviceCIDR="10.100.0.0/16", podCIDR="10.200.0.0/16,fd00::/108"), V2),
    "small service cidr with k0s": (network(serviceCIDR="10.96.0.0/28"), V2),
    "pvc": (
        pvc(
            {
                "accessModes": ["ReadWriteOnce", "ReadWriteOncePod"],
                "resources": {"requests": {"storage": "10Gi"}, "limits": {"storage": "20Gi"}},
            }
        ),
        V2,
    ),
}


@pytest.mark.parametrize(("spec", "version", "path"), BAD.values(), ids=BAD.keys())
def test_bad_value_is_refused_naming_the_field(
    spec: dict[str, Any], version: str, path: str
) -> None:
    found = errors(spec, version)
    assert path in found, found


@pytest.mark.parametrize(("spec", "version"), GOOD.values(), ids=GOOD.keys())
def test_good_value_is_accepted(spec: dict[str, Any], version: str) -> None:
    assert errors(spec, version) == {}


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        (
            kine("foo://x/y"),
            "spec.storage.kine.dataSourceURL",
            "scheme foo:// is not known to kine; use one of sqlite://, mysql://, postgres://, "
            "postgresql://, nats://, http://, https://, unix://",
        ),
        (
            {"externalAddress": "host:443"},
            "spec.externalAddress",
            '"host:443" is not a host; write a DNS name or an IP address without scheme, '
            "port or path, e.g. api.example.com or 192.0.2.10",
        ),
        (
            {"mounts": [{"path": "etc", **CM}]},
            "spec.mounts[0].path",
            '"etc" is relative; start it with /',
        ),
        (
            {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
            "spec.resources.requests.cpu",
            "2 is more than the limit 1; raise spec.resources.limits.cpu or lower the request",
        ),
        (
            etcd(args=["--data-dir=/tmp"]),
            "spec.storage.etcd.args[0]",
            "--data-dir is set by the operator (the data lives on the member's volume); remove it",
        ),
        (
            {"controlPlaneFlags": ["hello world"]},
            "spec.controlPlaneFlags[0]",
            '"hello world" is not a flag; write --name=value, e.g. --enable-metrics-scraping=true',
        ),
        (
            patch("json", "{}"),
            "spec.patches[0].patch.content",
            "a json patch must be a list of operations; write a list like "
            '[{"op": "add", "path": "/metadata/labels/x", "value": "y"}]',
        ),
    ],
)
def test_messages_say_what_to_do(spec: dict[str, Any], path: str, message: str) -> None:
    assert errors(spec)[path] == message


def test_v1beta1_paths_are_spelt_as_written() -> None:
    found = errors(
        {
            "kineDataSourceURL": "not a url",
            "controllerPlaneFlags": ["oops"],
            "etcd": {"args": ["--name=x"], "defragJob": {"schedule": "soon"}},
        },
        V1,
    )
    assert set(found) == {
        "spec.kineDataSourceURL",
        "spec.controllerPlaneFlags[0]",
        "spec.etcd.args[0]",
        "spec.etcd.defragJob.schedule",
    }


def test_kubernetes_distribution_keeps_its_service_range_size_rule() -> None:
    k8s = {"distribution": "kubernetes", **network(serviceCIDR="10.96.0.0/28")}
    assert "/24 or larger" in errors(k8s)["spec.k0sConfig.spec.network.serviceCIDR"]
    bad = {"distribution": "kubernetes", **network(podCIDR="nope")}
    assert "spec.k0sConfig.spec.network.podCIDR" in errors(bad)


def test_every_default_image_is_a_reference() -> None:
    defaults = [v for k, v in vars(v1beta2).items() if k.startswith("DEFAULT_") and "IMAGE" in k]
    assert len(defaults) >= 7
    for image in defaults:
        assert parse_image(image) is not None, image
    spec = {
        "image": v1beta2.DEFAULT_K0S_IMAGE,
        "monitoring": {
            "prometheusImage": v1beta2.DEFAULT_PROMETHEUS_IMAGE,
            "proxyImage": v1beta2.DEFAULT_PROXY_IMAGE,
        },
        **etcd(
            image=v1beta2.DEFAULT_ETCD_IMAGE,
            defragJob={
                "image": v1beta2.DEFAULT_DEFRAG_IMAGE,
                "schedule": v1beta2.DEFAULT_DEFRAG_SCHEDULE,
            },
        ),
    }
    assert errors(spec) == {}
    assert errors(Cluster().model_dump(by_alias=True, exclude_none=True)["spec"]) == {}


def test_managed_etcd_flags_are_those_the_renderer_sets() -> None:
    """Every refused flag is one the etcd container sets (a flag, or the environment for the
    founding members), so tuning flags stay open."""
    obj = Cluster.model_validate({"metadata": {"name": "c", "namespace": "ns"}})
    container = etcd_statefulset(obj, Facts())["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][1]
    env = {e["name"] for e in container["env"]}
    for flag in ETCD_MANAGED_FLAGS:
        by_env = "ETCD_" + flag.upper().replace("-", "_") in env | {"ETCD_INITIAL_CLUSTER_STATE"}
        assert f"--{flag}=" in script or by_env or flag == "wal-dir", flag


@pytest.mark.parametrize(
    "schedule",
    ["0 12 * * *", "@hourly", "@every 1h30m", "5/10 * ? * 0", "0 0 L * *", "* * * * * *"],
)
def test_cron_grammar(schedule: str) -> None:
    ok = {"0 12 * * *", "@hourly", "@every 1h30m", "5/10 * ? * 0"}
    assert (cron_problem(schedule) is None) == (schedule in ok)


# --- spec.kubernetes.tuning ---------------------------------------------------------------------


def tuning(**components: Any) -> dict[str, Any]:
    return {"distribution": "kubernetes", "kubernetes": {"tuning": components}}


@pytest.mark.parametrize(
    ("spec", "path", "words"),
    [
        (tuning(controllerManager={"flags": ["--kubeconfig=/x"]}),
         "spec.kubernetes.tuning.controllerManager.flags[0]", "set by the operator"),
        (tuning(controllerManager={"flags": ["--cluster-cidr=10.0.0.0/8"]}),
         "spec.kubernetes.tuning.controllerManager.flags[0]", "network.podCIDR"),
        (tuning(scheduler={"flags": ["--v=2", "two words"]}),
         "spec.kubernetes.tuning.scheduler.flags[1]", "is not a flag"),
        (tuning(kine={"flags": ["--endpoint=sqlite://x"]}),
         "spec.kubernetes.tuning.kine.flags[0]", "spec.storage.kine.dataSourceURL"),
        (tuning(konnectivityServer={"flags": ["--agent-port=1"]}),
         "spec.kubernetes.tuning.konnectivityServer.flags[0]", "spec.service.konnectivityPort"),
        (tuning(apiServer={"goMemoryLimit": "16Mi"}),
         "spec.kubernetes.tuning.apiServer.goMemoryLimit", "at least 32Mi"),
        (tuning(kine={"goMemoryLimit": "lots"}),
         "spec.kubernetes.tuning.kine.goMemoryLimit", "at least 32Mi"),
    ],
)  # fmt: skip
def test_tuning_that_would_unwire_the_control_plane_is_refused(
    spec: dict[str, Any], path: str, words: str
) -> None:
    assert words in errors(spec)[path]


def test_tuning_is_accepted_and_only_warned_about_with_k0s() -> None:
    good = tuning(
        apiServer={"goGC": 50, "goMemoryLimit": "200Mi"},
        controllerManager={"flags": ["--controllers=*,bootstrapsigner,tokencleaner,-ttl"]},
        scheduler={"flags": ["--v", "2"], "goGC": 80},
        kine={"flags": ["--datastore-poll-interval=5s"]},
    )
    assert errors(good) == {}
    k0s = {"kubernetes": {"tuning": {"scheduler": {"goGC": 50}}}}
    result = validate(cluster(k0s))
    assert result.errors == []
    assert [w.path for w in result.warnings] == ["spec.kubernetes.tuning"]
