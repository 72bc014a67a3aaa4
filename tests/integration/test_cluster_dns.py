"""Cluster DNS of the real-node local mothership: what `dev up` starts, seen from pods.

No lock wrapper is needed: the session fixture (tests/conftest.py) starts its real node
beside any other local mothership's (in a machine when the host's network is taken):

    python -m pytest tests/integration/test_cluster_dns.py
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Service

from mothership.testenv import clusterdns, kube
from mothership.testenv.local import LocalMothership
from mothership.testenv.realnode import CONTROL_PLANE_IMAGE

# Names outside the cluster: the host may resolve some (a sandbox only a few), never the last.
OUTSIDE_NAMES = ("pypi.org", "example.org", "no-such-name.invalid")


@pytest.fixture
def kc(mothership_real: LocalMothership) -> Client:
    return kube.client(mothership_real.cfg.kubeconfig)


@pytest.fixture
def ns(kc: Client) -> Iterator[str]:
    name = f"dns-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    kc.delete(Namespace, name)


def _run(kc: Client, ns: str, name: str, script: str) -> str:
    """Run a script in the control-plane image (busybox sh) to completion; its output."""
    kc.create(
        Pod.from_dict(
            {
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": name,
                            "image": CONTROL_PLANE_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["/bin/sh", "-c", script],
                        }
                    ],
                },
            }
        )
    )

    def done() -> bool:
        return kc.get(Pod, name, namespace=ns).status.phase in ("Succeeded", "Failed")

    kube.wait_until(f"pod {name} finished", done, 90)
    output = "".join(kc.log(name, namespace=ns))
    phase = kc.get(Pod, name, namespace=ns).status.phase
    assert phase == "Succeeded", f"{name} {phase}:\n{output}"
    return output


def test_dev_up_runs_coredns_behind_kube_dns(mothership_real: LocalMothership, kc: Client) -> None:
    cfg = mothership_real.cfg
    service = kc.get(Service, clusterdns.SERVICE, namespace=clusterdns.NAMESPACE)
    assert service.spec.clusterIP == cfg.dns_ip and cfg.dns_ip.endswith(".10")
    deployment = kc.get(Deployment, clusterdns.NAME, namespace=clusterdns.NAMESPACE)
    assert deployment.status.readyReplicas == 1
    assert deployment.spec.template.spec.containers[0].image == clusterdns.IMAGE
    # From the host, through kube-proxy's rules for the Service IP.
    assert clusterdns.query(cfg.dns_ip, "kubernetes.default.svc.cluster.local") == (
        0,
        [cfg.service_ip],
    )
    rcode, _ = clusterdns.query(cfg.dns_ip, "no-such-service.default.svc.cluster.local")
    assert rcode == 3  # NXDOMAIN


def test_pods_resolve_services_and_headless_pod_names(
    mothership_real: LocalMothership, kc: Client, ns: str
) -> None:
    """What managed etcd needs: a StatefulSet pod by `<pod>.<headless service>` and by its
    full name, even before it is ready, plus Service names, from a pod's resolv.conf."""
    kc.create(
        Service.from_dict(
            {
                "metadata": {"name": "members", "namespace": ns},
                "spec": {
                    "clusterIP": "None",
                    "publishNotReadyAddresses": True,
                    "selector": {"app": "members"},
                    "ports": [{"name": "peer", "port": 2380}],
                },
            }
        )
    )
    kc.create(
        StatefulSet.from_dict(
            {
                "metadata": {"name": "members", "namespace": ns},
                "spec": {
                    "serviceName": "members",
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "members"}},
                    "template": {
                        "metadata": {"labels": {"app": "members"}},
                        "spec": {
                            "terminationGracePeriodSeconds": 0,
                            "containers": [
                                {
                                    "name": "idle",
                                    "image": CONTROL_PLANE_IMAGE,
                                    "imagePullPolicy": "Never",
                                    "command": ["/bin/sleep", "3600"],
                                    # Never ready: the name must resolve all the same.
                                    "readinessProbe": {"exec": {"command": ["/bin/false"]}},
                                }
                            ],
                        },
                    },
                },
            }
        )
    )
    kube.wait_until(
        "members-0 has an IP",
        lambda: bool(kc.get(Pod, "members-0", namespace=ns).status.podIP),
        90,
    )
    pod_ip = kc.get(Pod, "members-0", namespace=ns).status.podIP
    # The same script shape as the etcd DNS check: getent through the pod's search list.
    output = _run(
        kc,
        ns,
        "resolver",
        "set -e; cat /etc/resolv.conf; "
        "getent hosts kubernetes.default.svc.cluster.local; "
        "getent hosts kubernetes.default; "
        "getent hosts members-0.members; "
        f"getent hosts members-0.members.{ns}.svc; "
        "if getent hosts members-9.members; then exit 1; fi; "
        f"echo --nslookup--; nslookup members-0.members.{ns}.svc.cluster.local",
    )
    cfg = mothership_real.cfg
    assert f"nameserver {cfg.dns_ip}" in output
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in output
    lines = output.splitlines()
    assert f"{cfg.service_ip} kubernetes.default.svc.cluster.local" in lines
    assert f"{cfg.service_ip} kubernetes.default" in lines
    assert f"{pod_ip} members-0.members" in lines
    assert f"{pod_ip} members-0.members.{ns}.svc" in lines
    # busybox nslookup asks the DNS server directly (no Go resolver in between).
    assert pod_ip in output.split("--nslookup--", 1)[1]


def test_other_names_go_to_the_host_resolver_when_it_answers(
    mothership_real: LocalMothership, kc: Client, ns: str
) -> None:
    corefile = kc.get(ConfigMap, clusterdns.NAME, namespace=clusterdns.NAMESPACE).data["Corefile"]
    upstreams = clusterdns.usable_upstreams()
    if not upstreams:
        assert "forward" not in corefile
        rcode, _ = clusterdns.query(mothership_real.cfg.dns_ip, "example.org")
        assert rcode == 5  # REFUSED at once: only the cluster's zones are served
        return
    assert f"forward . {' '.join(upstreams)}" in corefile
    # Whatever the host's resolver says, cluster DNS says the same, for a name that exists
    # (if the host resolves any of these) and for one that does not.
    answers = {name: clusterdns.query(upstreams[0], name) for name in OUTSIDE_NAMES}
    for name, upstream in answers.items():
        rcode, addresses = clusterdns.query(mothership_real.cfg.dns_ip, name)
        assert (rcode, sorted(addresses)) == (upstream[0], sorted(upstream[1])), name
    resolved = [name for name, (rcode, addresses) in answers.items() if rcode == 0 and addresses]
    if resolved:  # and a pod gets it through its resolv.conf
        output = _run(kc, ns, "outside", f"getent ahostsv4 {resolved[0]}")
        assert {line.split()[0] for line in output.splitlines()} == set(answers[resolved[0]][1])
