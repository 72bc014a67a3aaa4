"""How the in-cluster operator shares its webhook certificate and fills in caBundle,
against a real API server (no pods needed: the API server is asked, not the webhook).

- Two replicas with ``--webhook-certs=secret`` serve certificates of one CA, kept in a
  Secret; a second start reuses it instead of making a new CA.
- ``--webhook-registration=ca-bundle`` writes only ``caBundle`` into the configurations
  and CRDs the install manifest created, under a field manager of its own: re-applying the
  manifest (as kubectl does) neither conflicts nor removes the bundle.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import AsyncClient, Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, Secret
from lightkube.types import PatchType

from mothership.install import manifests
from mothership.testenv import kube
from mothership.testenv.local import LocalMothership
from mothership.testenv.ports import free_ports
from mothership.webhooks import registration
from mothership.webhooks.runtime import CertSource, Registration, WebhookConfig, WebhookService

KINDS = (MutatingWebhookConfiguration, ValidatingWebhookConfiguration)


@pytest.fixture
def kc(mothership_api: LocalMothership) -> Iterator[Client]:
    client = kube.client(mothership_api.cfg.kubeconfig, field_manager="kubectl")
    yield client
    # The registration points at a Service nothing serves here: leave no admission behind.
    for kind in KINDS:
        try:
            client.delete(kind, registration.CONFIG_NAME)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
    asyncio.run(_reset_conversion(mothership_api.cfg.kubeconfig))


async def _reset_conversion(kubeconfig: Path) -> None:
    client = AsyncClient(config=KubeConfig.from_file(kubeconfig))
    try:
        await registration.unregister(client)
    finally:
        await client.close()


@pytest.fixture
def namespace(kc: Client) -> Iterator[str]:
    name = f"ms-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    kc.delete(Namespace, name)


def _config(kubeconfig: Path, namespace: str, tmp: Path, **kw: object) -> WebhookConfig:
    port = free_ports(["webhook"])["webhook"]
    base = {
        "cert_dir": tmp,
        "port": port,
        "service": f"{namespace}/{manifests.WEBHOOK_SERVICE}",
        "dns_names": ("localhost", f"{manifests.WEBHOOK_SERVICE}.{namespace}.svc"),
        "certs": CertSource.secret,
        "namespace": namespace,
        "registration": Registration.none,
    }
    base.update(kw)
    return WebhookConfig(**base)  # type: ignore[arg-type]


async def _start(kubeconfig: Path, config: WebhookConfig) -> WebhookService:
    service = WebhookService(config, AsyncClient(config=KubeConfig.from_file(kubeconfig)))
    await service.start()
    return service


def _served_issuer(port: int) -> bytes:
    """The CA PEM of whatever certificate the server on this port presents."""
    import socket

    from cryptography import x509

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), 5) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der).issuer.rfc4514_string().encode()


def test_replicas_share_one_ca_through_the_secret(
    mothership_api: LocalMothership, kc: Client, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = mothership_api.cfg.kubeconfig

    async def scenario() -> tuple[bytes, bytes, bytes, bytes]:
        a = await _start(kubeconfig, _config(kubeconfig, namespace, tmp_path / "a"))
        b = await _start(kubeconfig, _config(kubeconfig, namespace, tmp_path / "b"))
        try:
            assert a.runner and b.runner
            issuers = (
                await asyncio.to_thread(_served_issuer, a.runner.port),
                await asyncio.to_thread(_served_issuer, b.runner.port),
            )
            return a._ca_pem or b"", b._ca_pem or b"", *issuers
        finally:
            await a.stop()
            await b.stop()

    ca_a, ca_b, issuer_a, issuer_b = asyncio.run(scenario())
    assert ca_a and ca_a == ca_b
    assert issuer_a == issuer_b
    secret = kc.get(Secret, manifests.CERT_SECRET, namespace=namespace)
    assert secret.type == "kubernetes.io/tls"
    assert base64.b64decode(secret.data["ca.crt"]) == ca_a
    version = secret.metadata.resourceVersion

    # A restart (a new pod, empty cert dir) adopts the stored CA and writes nothing.
    async def restart() -> bytes:
        c = await _start(kubeconfig, _config(kubeconfig, namespace, tmp_path / "c"))
        await c.stop()
        return c._ca_pem or b""

    assert asyncio.run(restart()) == ca_a
    assert (
        kc.get(Secret, manifests.CERT_SECRET, namespace=namespace).metadata.resourceVersion
        == version
    )


def _apply_manifest_part(kc: Client, namespace: str) -> None:
    """What `kubectl apply --server-side -f install.yaml` writes for the webhooks."""
    settings = manifests.Settings(namespace=namespace)
    for obj in manifests.objects(settings):
        if obj["kind"] in ("CustomResourceDefinition", *(k.__name__ for k in KINDS)):
            kc.apply(from_dict(obj), field_manager="kubectl")


def _expected_bundles() -> int:
    """One per webhook of both configurations and one per CRD with conversion."""
    configs = registration.webhook_configurations(url_base="https://x", ca_pem=None)
    return sum(len(c["webhooks"]) for c in configs) + len(registration.CRD_NAMES)


def _bundles(kc: Client) -> list[str | None]:
    out: list[str | None] = []
    for kind in KINDS:
        out += [h.clientConfig.caBundle for h in kc.get(kind, registration.CONFIG_NAME).webhooks]
    for name in registration.CRD_NAMES:
        crd = kc.get(CustomResourceDefinition, name)
        out.append(crd.spec.conversion.webhook.clientConfig.caBundle)
    return out


def _owners_of_ca_bundle(kc: Client) -> set[str]:
    owners = set()
    for kind in KINDS:
        for entry in kc.get(kind, registration.CONFIG_NAME).metadata.managedFields or []:
            if "f:caBundle" in str(entry.fieldsV1):
                owners.add(entry.manager)
    return owners


def test_ca_bundle_only_and_manifest_reapply_keeps_it(
    mothership_api: LocalMothership, kc: Client, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = mothership_api.cfg.kubeconfig
    config = _config(kubeconfig, namespace, tmp_path / "a", registration=Registration.ca_bundle)

    # Started before the configurations exist (a fresh install may race): not registered
    # yet, retried by the keeper; nothing half-made was created meanwhile.
    for kind in KINDS:
        with pytest.raises(ApiError):
            kc.get(kind, registration.CONFIG_NAME)

    async def scenario() -> tuple[bool, bool, bytes]:
        service = await _start(kubeconfig, config)
        try:
            before = service.registered
            for kind in KINDS:
                with pytest.raises(ApiError):
                    kc.get(kind, registration.CONFIG_NAME)
            await asyncio.to_thread(_apply_manifest_part, kc, namespace)
            await service.refresh()
            return before, service.registered, service._ca_pem or b""
        finally:
            await service.stop()

    before, after, ca = asyncio.run(scenario())
    assert (before, after) == (False, True)
    bundle = base64.b64encode(ca).decode()
    assert _bundles(kc) == [bundle] * _expected_bundles()
    assert _owners_of_ca_bundle(kc) == {registration.CA_FIELD_MANAGER}

    # kubectl re-applies the manifest (an upgrade, a GitOps sync): no conflict, bundle kept.
    _apply_manifest_part(kc, namespace)
    assert _bundles(kc) == [bundle] * _expected_bundles()

    # Someone removes a bundle by hand: the next refresh puts it back.
    kc.patch(
        ValidatingWebhookConfiguration,
        registration.CONFIG_NAME,
        [{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}],
        patch_type=PatchType.JSON,
    )
    assert _bundles(kc).count(bundle) == _expected_bundles() - 1

    async def refresh_once() -> None:
        service = await _start(kubeconfig, config)
        await service.stop()

    asyncio.run(refresh_once())
    assert _bundles(kc) == [bundle] * _expected_bundles()


def test_a_service_started_while_the_api_server_is_away_registers_when_it_answers(
    mothership_api: LocalMothership, kc: Client, tmp_path: Path
) -> None:
    """The chaos bench's case: an operator restarted while its API server restarts.

    Its client goes through a port nothing listens on at first; the service still starts
    and serves (it used to exit, and every create stayed refused), then registers once a
    forwarder to the real API server opens on that port.
    """
    import yaml

    api = urllib.parse.urlsplit(kc.config.cluster.server)
    gate = free_ports(["gate"])["gate"]
    away = yaml.safe_load(mothership_api.cfg.kubeconfig.read_text())
    for item in away["clusters"]:
        item["cluster"]["server"] = f"https://127.0.0.1:{gate}"
    kubeconfig = tmp_path / "away.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(away))
    config = WebhookConfig(
        cert_dir=tmp_path / "certs",
        port=free_ports(["webhook"])["webhook"],
        registration=Registration.full,
    )

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(api.hostname, api.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def scenario() -> tuple[bool, bool, str]:
        service = await _start(kubeconfig, config)
        try:
            before = service.registered
            assert service.runner is not None
            url_base = service.runner.url_base
            server = await asyncio.start_server(forward, "127.0.0.1", gate)
            try:
                deadline = asyncio.get_running_loop().time() + 60
                while not service.registered:
                    assert asyncio.get_running_loop().time() < deadline, "never registered"
                    await asyncio.sleep(0.2)
            finally:
                server.close()
            return before, service.registered, url_base
        finally:
            await service.stop(unregister=False)

    before, after, url_base = asyncio.run(scenario())
    assert (before, after) == (False, True)
    for kind in KINDS:
        urls = {w.clientConfig.url for w in kc.get(kind, registration.CONFIG_NAME).webhooks or []}
        assert urls and all(u and u.startswith(url_base) for u in urls), urls
