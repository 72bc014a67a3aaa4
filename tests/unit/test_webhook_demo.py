"""The demo admission webhook, built and run for real on this host: it answers the
AdmissionReview the API server sends, refuses what carries its deny label, allows the rest."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from mothership.pki.certs import issue_cert, new_ca
from mothership.testenv import paths, webhook_demo
from mothership.testenv.gobuild import build_env
from mothership.testenv.kube import wait_until
from mothership.testenv.ports import free_ports

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ssl.SSLContext]]:
    tmp = tmp_path_factory.mktemp("webhook-demo")
    binary = webhook_demo.build(paths.build_root() / "webhook-demo", build_env())
    ca = new_ca("webhook-demo-test-ca")
    leaf = issue_cert(ca, "webhook-demo", ip_addresses=["127.0.0.1"], server=True)
    (tmp / "tls.crt").write_bytes(leaf.cert_pem)
    (tmp / "tls.key").write_bytes(leaf.key_pem)
    port = free_ports(["webhook-demo"])["webhook-demo"]
    proc = subprocess.Popen(
        [
            str(binary),
            f"--listen=127.0.0.1:{port}",
            f"--tls-cert={tmp / 'tls.crt'}",
            f"--tls-key={tmp / 'tls.key'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    base = f"https://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", context=ctx, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return proc.poll() is not None  # exited: stop waiting, the test fails below

    try:
        wait_until("webhook-demo /healthz", healthy, 20)
        assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()
        yield base, ctx
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _review(base: str, ctx: ssl.SSLContext, labels: dict[str, str]) -> dict[str, Any]:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b4a7f3e-1c52-4d7e-9a51-2f0c6a3b9e11",
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": labels}},
        },
    }
    req = urllib.request.Request(
        f"{base}{webhook_demo.PATH}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
        answer: dict[str, Any] = json.load(resp)
    return answer


def test_objects_without_the_deny_label_are_allowed(server: tuple[str, ssl.SSLContext]) -> None:
    answer = _review(*server, {"app": "x"})
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"] == {"uid": "0b4a7f3e-1c52-4d7e-9a51-2f0c6a3b9e11", "allowed": True}


def test_the_deny_label_is_refused_with_the_pod_and_reason(
    server: tuple[str, ssl.SSLContext],
) -> None:
    answer = _review(*server, {webhook_demo.DENY_LABEL: "no-thanks"})["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert answer["status"]["message"].startswith("denied by webhook-demo on ")
    assert answer["status"]["message"].endswith(": no-thanks")


def test_a_body_that_is_no_admission_review_is_a_bad_request(
    server: tuple[str, ssl.SSLContext],
) -> None:
    base, ctx = server
    req = urllib.request.Request(f"{base}{webhook_demo.PATH}", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, context=ctx, timeout=5)
    assert caught.value.code == 400
