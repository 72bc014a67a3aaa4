"""`mothership operator run` on the host as a test process, for real-node integration tests.

It runs in the network namespace of the mothership's node (the host's, or its machine's, see
mothership/testenv/node_host.py): the API server calls its webhooks on loopback, and it
reaches ClusterIP tenants through that node's Service rules."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from mothership.testenv import health, kube, netns
from mothership.testenv.ports import free_ports


class Operator:
    """`mothership operator run` on the host, running tenants from the local image."""

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        image_template: str,
        etcd_image: str,
        extra_args: tuple[str, ...] = (),
        identity: str = "kubernetes-distribution-test",
        node_netns: str = "",
    ) -> None:
        self.kubeconfig, self.log = kubeconfig, log
        self.image_template, self.etcd_image = image_template, etcd_image
        self.extra_args, self.identity = extra_args, identity
        self.node_netns = node_netns
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports = free_ports(["metrics", "health", "webhook"])

    def start(self) -> None:
        argv = [
            "mothership", "operator", "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--metrics-port={self.ports['metrics']}",
            f"--health-port={self.ports['health']}",
            "--resync=5",
            "--log-format=plain",
            f"--webhook-port={self.ports['webhook']}",
            f"--webhook-cert-dir={self.log.parent / 'webhook'}",
            "--unregister-webhooks-on-exit",
            f"--leader-identity={self.identity}",
            f"--kubernetes-image-template={self.image_template}",
            f"--default-etcd-image={self.etcd_image}",
            *self.extra_args,
        ]  # fmt: skip
        fh = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            netns.argv(self.node_netns, argv), stdout=fh, stderr=subprocess.STDOUT
        )
        kube.wait_until("operator healthz", self._healthy, 60)

    def _healthy(self) -> bool:
        assert self.proc and self.proc.poll() is None, self.log.read_text()[-3000:]
        url = f"http://127.0.0.1:{self.ports['health']}/healthz"
        return netns.call(self.node_netns, lambda: health.http_ok(url))

    def metric(self, name: str) -> float:
        url = f"http://127.0.0.1:{self.ports['metrics']}/metrics"
        _, text = netns.call(self.node_netns, lambda: health.http_get(url))
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
