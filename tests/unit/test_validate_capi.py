"""Admission of the Cluster API providers' kinds: field paths and the fix in every message."""

from __future__ import annotations

from mothership.webhooks import validate_capi


def _cp(api: str = "v1beta2", **spec: object) -> dict:
    return {
        "apiVersion": f"controlplane.cluster.x-k8s.io/{api}",
        "kind": "K0smotronControlPlane",
        "metadata": {"name": "a-very-long-control-plane-name-" + "x" * 40, "namespace": "ns",
                     "uid": "cp-uid"},
        "spec": spec,
    }  # fmt: skip


def _paths(result: validate_capi.Result) -> list[str]:
    return [p.path for p in result.errors]


def test_a_control_plane_gets_the_cluster_rules_but_not_the_name_check() -> None:
    ok = validate_capi.validate(_cp(distribution="kubernetes", version="v1.35.4"))
    assert ok.errors == []  # a long name: the hosted Cluster is named after the CAPI Cluster
    bad = validate_capi.validate(_cp(distribution="kubernetes", version="1.35"))
    assert _paths(bad) == ["spec.version"]
    old = validate_capi.validate(
        _cp("v1beta1", kineDataSourceURL="x", kineDataSourceSecretName="s")
    )
    assert "spec.kineDataSourceSecretName" in _paths(old)  # in the spelling the user wrote


def test_node_ports_clash_with_other_clusters_but_not_its_own_hosted_one() -> None:
    spec = {"service": {"type": "NodePort", "apiPort": 31000, "konnectivityPort": 31001}}
    own = {"metadata": {"name": "c", "namespace": "ns", "ownerReferences": [{"uid": "cp-uid"}]},
           "spec": spec}  # fmt: skip
    other = {"metadata": {"name": "d", "namespace": "ns"}, "spec": spec}
    old = _cp()
    changed = _cp(**spec)
    assert validate_capi.validate(changed, old, [own]).errors == []
    clash = validate_capi.validate(changed, old, [own, other])
    assert any("d" in p.message for p in clash.errors), clash


def test_worker_config_flags_files_and_formats() -> None:
    config = {
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2",
        "kind": "K0sWorkerConfig",
        "metadata": {"name": "w"},
        "spec": {
            "args": ["--labels=a=b", "--enable-cloud-provider"],
            "files": [
                {"path": "relative.txt", "content": "x"},
                {"path": "/etc/y", "content": "y", "contentFrom": {"secretRef": {"name": "s",
                                                                                "key": "k"}}},
                {"path": "/etc/z", "contentFrom": {}},
            ],
            "provisioner": {"type": "ignition"},
        },
    }  # fmt: skip
    result = validate_capi.validate(config)
    assert _paths(result) == ["spec.args[1]", "spec.files[0].path", "spec.files[1].content"]
    assert [w.path for w in result.warnings] == ["spec.provisioner"]
    assert "UnsupportedFormat" in result.warnings[0].message


def test_a_remote_machine_comes_from_a_pool_or_an_address_and_key() -> None:
    def rm(**spec: object) -> dict:
        return {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "RemoteMachine",
                "metadata": {"name": "m"}, "spec": spec}  # fmt: skip

    assert _paths(validate_capi.validate(rm())) == ["spec.address", "spec.sshKeyRef.name"]
    assert _paths(validate_capi.validate(rm(pool="p", address="1.2.3.4"))) == ["spec.address"]
    assert validate_capi.validate(rm(pool="p")).errors == []
    assert validate_capi.validate(rm(address="h", sshKeyRef={"name": "k"})).errors == []


def test_a_provision_job_replaces_the_key_and_needs_a_template_that_makes_a_job() -> None:
    def rm(job: object) -> dict:
        spec = {"address": "h", "provisionJob": job}
        return {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "RemoteMachine",
                "metadata": {"name": "m"}, "spec": spec}  # fmt: skip

    pod = {"containers": [{"name": "ssh", "image": "alpine-ssh"}]}
    ok = {"jobSpecTemplate": {"spec": {"template": {"spec": pod}}}}
    assert validate_capi.validate(rm(ok)).errors == []  # no sshKeyRef: the Job mounts its key
    path = "spec.provisionJob.jobSpecTemplate"
    assert _paths(validate_capi.validate(rm({"sshCommand": "ssh"}))) == [path]
    no_image = {"jobSpecTemplate": {"spec": {"template": {"spec": {"containers": [{}]}}}}}
    assert _paths(validate_capi.validate(rm(no_image))) == [f"{path}.spec.template.spec.containers"]
    always = {
        "jobSpecTemplate": {"spec": {"template": {"spec": {**pod, "restartPolicy": "Always"}}}}
    }
    result = validate_capi.validate(rm(always))
    assert _paths(result) == [f"{path}.spec.template.spec.restartPolicy"]
    assert "Never or OnFailure" in result.errors[0].message


def test_metadata_only_updates_and_deletions_always_pass() -> None:
    bad = {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "RemoteMachine",
           "metadata": {"name": "m"}, "spec": {}}  # fmt: skip
    labelled = {**bad, "metadata": {"name": "m", "labels": {"a": "b"}}}
    assert validate_capi.validate(labelled, bad).errors == []
