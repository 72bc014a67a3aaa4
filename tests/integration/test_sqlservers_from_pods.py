"""Pods on the real node reach the test SQL servers at the bridge address, as tenant
control planes with kine on PostgreSQL or MySQL will."""

from __future__ import annotations

import contextlib

from lightkube import ApiError
from lightkube.resources.core_v1 import Pod

from mothership.testenv import kube, pins, sqlservers
from mothership.testenv.local import LocalMothership

NS = "default"


def test_kine_in_a_pod_stores_into_the_sql_server(
    mothership_real: LocalMothership, sql_server: sqlservers.SqlServer
) -> None:
    kc = kube.client(mothership_real.cfg.kubeconfig)
    db = sql_server.create_database(f"from_pod_{sql_server.kind}", mothership_real.cfg.host_ip)
    name = f"kine-{sql_server.kind}"
    image = pins.local_control_plane_image(pins.KUBERNETES_VERSION)
    key = "/registry/configmaps/default/from-pod"
    kc.create(
        Pod.from_dict(
            {
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [
                        {
                            # A native sidecar: started (and its port open) before the main
                            # container, stopped once it is done.
                            "name": "kine",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "restartPolicy": "Always",
                            "command": [
                                "/usr/local/bin/kine",
                                f"--endpoint={db.pod_url}",
                                # The kubelet probes the pod IP, not loopback.
                                "--listen-address=0.0.0.0:2379",
                            ],
                            "startupProbe": {
                                "tcpSocket": {"port": 2379},
                                "periodSeconds": 1,
                                "failureThreshold": 60,
                            },
                        }
                    ],
                    "containers": [
                        {
                            "name": "write",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": [
                                "/usr/local/bin/etcdctl",
                                "--endpoints=http://127.0.0.1:2379",
                                "put",
                                key,
                                "written-by-a-pod",
                            ],
                        }
                    ],
                },
            }
        )
    )
    try:

        def finished() -> bool:
            phase = kc.get(Pod, name, namespace=NS).status.phase
            if phase == "Failed":
                logs = {
                    c: "".join(kc.log(name, namespace=NS, container=c)) for c in ("kine", "write")
                }
                raise AssertionError(f"pod {name} failed: {logs}")
            return phase == "Succeeded"

        try:
            kube.wait_until(f"pod {name} Succeeded", finished, 120)
        except TimeoutError as exc:
            pod = kc.get(Pod, name, namespace=NS)
            logs = {}
            for c in ("kine", "write"):
                with contextlib.suppress(ApiError):
                    logs[c] = "".join(kc.log(name, namespace=NS, container=c))
            raise AssertionError(f"{exc}; status {pod.status}; logs {logs}") from exc
    finally:
        with contextlib.suppress(ApiError):
            kc.delete(Pod, name, namespace=NS, grace_period=0)
    # Read back on the host, from the SQL server itself, not through kine.
    value = (
        "convert_from(value, 'UTF8')" if sql_server.kind == "postgres" else "CAST(value AS CHAR)"
    )
    query = f"SELECT {value} FROM kine WHERE name = '{key}' ORDER BY id DESC LIMIT 1"
    assert sql_server.sql(query, database=db.name).strip() == "written-by-a-pod"
    sql_server.drop_database(db.name)
