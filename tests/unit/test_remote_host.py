"""Control planes hosted in another cluster: the admission rules and the pure helpers, offline.

What reaches the hosting cluster (placement labels, Secret copies, the Secrets a rendered
control plane mounts) and what admission says about spec.remoteHostCluster. The operator
writing to a real second API server is in tests/integration/test_remote_host.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.controllers import remote_host, remote_secrets
from mothership.render import names
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts
from mothership.webhooks.validate import validate

REF = "spec.remoteHostCluster.kubeconfigRef"


def cluster(spec: Any = None, version: str = "k0smotron.io/v1beta2") -> dict[str, Any]:
    return {
        "apiVersion": version,
        "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": "tenants", "uid": "u-1"},
        "spec": spec if spec is not None else {},
    }


def remote(name: str = "hosting", namespace: str = "tenants", **more: Any) -> dict[str, Any]:
    return {"remoteHostCluster": {"kubeconfigRef": {"name": name, "namespace": namespace, **more}}}


def errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [str(p) for p in validate(obj, old).errors]


# --- admission --------------------------------------------------------------------------------


def test_a_well_formed_reference_passes_and_may_stay_as_it_is() -> None:
    assert errors(cluster(remote())) == []
    assert errors(cluster(remote(key="kubeconfig.yaml"))) == []
    assert errors(cluster({**remote(), "replicas": 3}), cluster(remote())) == []
    # The default key written out is the same reference.
    assert errors(cluster(remote(key="value")), cluster(remote())) == []


@pytest.mark.parametrize(
    ("ref", "found"),
    [
        (
            {"name": "Hosting_Cluster", "namespace": "tenants"},
            f'{REF}.name: "Hosting_Cluster" is not a Secret name: use lowercase letters, '
            "digits, '-' and '.' (e.g. hosting-cluster-kubeconfig)",
        ),
        (
            {"name": "hosting", "namespace": "a.b"},
            f'{REF}.namespace: "a.b" is not a namespace name: name the namespace of the Secret '
            "that holds the hosting cluster's kubeconfig (e.g. default)",
        ),
        (
            {"name": "hosting", "namespace": "tenants", "key": "kube config"},
            f"{REF}.key: \"kube config\" is not a Secret key: use letters, digits, '-', '_' and "
            "'.' (the default is value)",
        ),
    ],
)
def test_a_malformed_reference_is_refused_naming_the_field(ref: dict, found: str) -> None:
    assert found in errors(cluster({"remoteHostCluster": {"kubeconfigRef": ref}}))


def test_where_the_control_plane_runs_cannot_change() -> None:
    assert errors(cluster(remote()), cluster({})) == [
        f"{REF}: cannot be added to an existing Cluster: its control plane runs in this "
        "mothership; moving a control plane to another cluster is not a spec edit, so create "
        "a new Cluster with remoteHostCluster set"
    ]
    assert errors(cluster({}), cluster(remote())) == [
        f"{REF}: cannot be removed: this Cluster's control plane runs in the cluster named by "
        "Secret tenants/hosting key value; keep the reference (to rotate credentials, update "
        "the Secret)"
    ]
    assert errors(cluster(remote("other")), cluster(remote())) == [
        f"{REF}: cannot change from Secret tenants/hosting key value to tenants/other key "
        "value: the control plane runs in the cluster the first one names; to rotate its "
        "credentials, update that Secret's kubeconfig instead"
    ]


def test_v1beta1_users_read_their_own_field_name() -> None:
    old = cluster(
        {"kubeconfigRef": {"name": "hosting", "namespace": "tenants"}}, "k0smotron.io/v1beta1"
    )
    new = cluster(
        {"kubeconfigRef": {"name": "other", "namespace": "tenants"}}, "k0smotron.io/v1beta1"
    )
    found = errors(new, old)
    assert len(found) == 1 and found[0].startswith("spec.kubeconfigRef: cannot change from")


# --- where objects go -------------------------------------------------------------------------


def test_the_reference_in_a_cluster() -> None:
    assert remote_host.kubeconfig_ref(cluster({})) is None
    assert remote_host.kubeconfig_ref(cluster({"remoteHostCluster": {}})) is None
    ref = remote_host.kubeconfig_ref(cluster(remote(key="k")))
    assert ref == remote_host.Ref("tenants", "hosting", "k")
    assert str(ref) == (
        "Secret tenants/hosting (key k, named by spec.remoteHostCluster.kubeconfigRef)"
    )


def test_placed_remotely_an_object_carries_the_uid_instead_of_an_owner() -> None:
    host = remote_host.Host(None, None, None, remote_host.Ref("ns", "s", "value"))  # type: ignore[arg-type]
    obj = {"kind": "ConfigMap", "metadata": {"name": "x", "labels": {"cluster": "demo"}}}
    placed = host.place(obj, cluster())
    assert placed["metadata"]["labels"] == {"cluster": "demo", remote_host.UID_LABEL: "u-1"}
    assert "ownerReferences" not in placed["metadata"]
    assert obj["metadata"]["labels"] == {"cluster": "demo"}, "the rendered object is not changed"
    local = remote_host.Host(None, None, None).place(obj, {**cluster(), **_owner()})  # type: ignore[arg-type]
    assert local["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def _owner() -> dict[str, Any]:
    return {"apiVersion": "k0smotron.io/v1beta2", "kind": "Cluster"}


def test_a_secret_copy_keeps_name_type_and_data_and_drops_what_binds_it_here() -> None:
    source = {
        "metadata": {
            "name": "demo-ca",
            "namespace": "tenants",
            "resourceVersion": "812",
            "uid": "s-1",
            "labels": {"cluster": "demo", "component": "pki"},
            "finalizers": ["mothership.io/authority"],
            "ownerReferences": [{"kind": "Cluster", "name": "demo", "uid": "u-1"}],
            "managedFields": [{"manager": "x"}],
        },
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"},
    }
    copy_ = remote_secrets.secret_copy(copy.deepcopy(source), "demo")
    assert copy_ == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "demo-ca",
            "namespace": "tenants",
            "labels": {
                "cluster": "demo",
                "component": "pki",
                "app.kubernetes.io/managed-by": "mothership",
            },
            "annotations": {remote_secrets.SOURCE_VERSION: "812"},
        },
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"},
    }
    # A user's Secret without our labels is labelled as the Cluster's there.
    bare = remote_secrets.secret_copy({"metadata": {"name": "pull", "namespace": "t"}}, "demo")
    assert bare["metadata"]["labels"]["cluster"] == "demo" and bare["type"] == "Opaque"


def test_mounted_secrets_are_found_wherever_a_pod_names_them() -> None:
    pod = {
        "volumes": [
            {"name": "a", "secret": {"secretName": "vol"}},
            {
                "name": "b",
                "projected": {
                    "sources": [{"secret": {"name": "proj"}}, {"configMap": {"name": "cm"}}]
                },
            },
            {"name": "c", "configMap": {"name": "cm2"}},
        ],
        "imagePullSecrets": [{"name": "pull"}],
        "initContainers": [{"envFrom": [{"secretRef": {"name": "init-env"}}]}],
        "containers": [
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}}]},
            {"env": [{"name": "Y", "value": "plain"}]},
        ],
    }
    objects = [
        {"kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"template": {"spec": pod}}},
        {
            "kind": "CronJob",
            "metadata": {"name": "j"},
            "spec": {
                "jobTemplate": {
                    "spec": {
                        "template": {"spec": {"volumes": [{"secret": {"secretName": "cron"}}]}}
                    }
                }
            },
        },
        {"kind": "Secret", "metadata": {"name": "vol"}},  # rendered: written there directly
    ]
    assert remote_secrets.mounted_secrets(objects) == [
        "cron",
        "env",
        "init-env",
        "proj",
        "pull",
    ]


@pytest.mark.parametrize("distribution", ["k0s", "kubernetes"])
def test_a_rendered_control_plane_mounts_the_pki_the_mothership_keeps(distribution: str) -> None:
    spec: dict[str, Any] = {"distribution": distribution, **remote()}
    if distribution == "kubernetes":
        spec["version"] = "v1.34.4"
    objects = render_cluster(
        Cluster.model_validate(cluster(spec)), Facts(external_address="192.0.2.10")
    )
    wanted = remote_secrets.mounted_secrets(objects)
    assert names.pki_secret("demo", "ca") in wanted
    rendered = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    assert not rendered & set(wanted)
    # All of them the operator's own (PKI, certificates, encryption keys): none is the user's.
    ours = {names.encryption_secret("demo"), names.kubernetes_certs_secret("demo")}
    assert all(w.startswith("demo-") or w in ours for w in wanted), wanted


def test_node_ports_clash_only_among_clusters_on_the_same_host() -> None:
    def on(host: dict[str, Any], name: str) -> dict[str, Any]:
        obj = cluster({"service": {"type": "NodePort"}, **host})
        obj["metadata"] = {"name": name, "namespace": "tenants"}
        return obj

    here, far, also_far = on({}, "a"), on(remote(), "b"), on(remote(), "c")
    elsewhere = on(remote("other-hosting"), "d")
    clash = "node port 30443 is already used by Cluster tenants/"
    assert not [e for e in validate(far, None, [here, elsewhere]).errors]
    assert not [e for e in validate(here, None, [far]).errors]
    found = [str(e) for e in validate(also_far, None, [here, far]).errors]
    assert any(clash + "b" in e for e in found), found


def test_the_secret_must_be_in_the_cluster_s_own_namespace() -> None:
    assert errors(cluster(remote(namespace="platform"))) == [
        f'{REF}.namespace: must be the Cluster\'s own namespace "tenants", not "platform": the '
        "operator would read another namespace's credentials on behalf of this one; copy the "
        "Secret into tenants and name it there"
    ]
