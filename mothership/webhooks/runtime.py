"""The webhooks as the operator runs them: certificates, serving, registration, renewal.

Every replica serves (standbys too): the API server reaches the webhooks through a
Service that picks any ready pod, and admission must keep working while leadership
changes hands. So every replica must present a certificate from the same CA:

- ``self``: each process keeps its own CA in ``cert_dir`` (one operator out of cluster);
- ``secret``: the first replica makes the CA and serving pair and stores them in a Secret
  of its namespace; the others adopt them (a create race is settled by the API server:
  the loser reads the winner's);
- ``provided``: someone else (cert-manager) writes ``tls.crt``/``tls.key`` into
  ``cert_dir``; they are only read, and re-read when they change.

Registration tells the API server where the webhooks are and which CA to trust:

- ``full``: write the whole webhook configurations and CRD conversion (out of cluster);
- ``ca-bundle``: the install manifest wrote them; only ``caBundle`` is filled in;
- ``none``: nothing (cert-manager's CA injector fills ``caBundle``).

A keeper task renews, re-adopts and re-registers periodically, so a certificate never
expires under a long-running operator and a bundle removed by hand comes back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx2 as httpx
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret

from mothership.webhooks import registration
from mothership.webhooks.child import WebhookChild
from mothership.webhooks.loop import LoopThread
from mothership.webhooks.server import Runner, cluster_lister, serve
from mothership.webhooks.tls import CA_CERT_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE, webhook_tls

log = logging.getLogger("mothership.webhooks")

SECRET_FILES = (CA_CERT_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE)
DEFAULT_CERT_SECRET = "mothership-webhook-tls"
# How often the keeper looks again, and how soon it retries an incomplete registration.
REFRESH_SECONDS = 300.0
RETRY_SECONDS = 5.0


class CertSource(StrEnum):
    self_managed = "self"
    secret = "secret"
    provided = "provided"


class Registration(StrEnum):
    full = "full"
    ca_bundle = "ca-bundle"
    none = "none"


class Serving(StrEnum):
    """Where the server runs: a child process of the operator (see
    :mod:`mothership.webhooks.child`), or an event loop thread inside it
    (:mod:`mothership.webhooks.loop`)."""

    process = "process"
    thread = "thread"


@dataclass(frozen=True)
class WebhookConfig:
    cert_dir: Path
    host: str = "127.0.0.1"
    port: int = 9443
    url_base: str | None = None  # how the API server reaches us, if not https://host:port
    service: str | None = None  # "namespace/name" when running in-cluster behind a Service
    dns_names: tuple[str, ...] = ("localhost",)
    ips: tuple[str, ...] = ("127.0.0.1",)
    unregister_on_exit: bool = False
    certs: CertSource = CertSource.self_managed
    cert_secret: str = DEFAULT_CERT_SECRET
    namespace: str = "default"  # of cert_secret
    registration: Registration = Registration.full
    refresh_seconds: float = REFRESH_SECONDS
    serving: Serving = Serving.process
    log_format: str = "plain"  # of the child process's log lines


class WebhookService:
    """A started webhook server plus the task that keeps its certificate and bundle current."""

    def __init__(self, config: WebhookConfig, client: AsyncClient | None = None) -> None:
        if config.registration == Registration.ca_bundle and not config.service:
            raise ValueError(
                "--webhook-registration=ca-bundle needs --webhook-service namespace/name: "
                "the install manifest registers the webhooks behind that Service"
            )
        self.config = config
        self.client = client or AsyncClient(config=KubeConfig.from_env())
        # The same credentials for the webhook loop's own client (an httpx client belongs
        # to the loop it first ran on).
        self._kube_config = getattr(getattr(self.client, "_client", None), "config", None)
        self._loop: LoopThread | None = None
        self._lister: AsyncClient | None = None
        self.runner: Runner | WebhookChild | None = None
        self.registered = False
        self._served: tuple[bytes, bytes] | None = None
        self._ca_pem: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_problem = ""

    async def start(self) -> None:
        """Certificates first, then listen, then register (a half-done registration retries).

        The server runs in a child process (``serving=process``) or on an event loop of its
        own (``thread``), with its own API client for the node port check: the caller's
        loop (the operator's) may be busy with reconciles for tens of milliseconds at a time.
        """
        await self._refresh_certificates()
        if self.config.serving == Serving.process:
            self.runner = self._child()
            await self.runner.start()
        else:
            self._loop = LoopThread("webhooks")
            self.runner = await self._loop.call(self._serve())
        self._served = _read_pair(self.config.cert_dir)
        try:
            await self._register()
        except Exception as exc:
            if not api_away(exc):
                raise
            # An operator (re)started while its API server restarts: the registration
            # it wrote before still names this port, so admission works as soon as the
            # server is back; the keeper registers again then. Exiting would leave
            # every create refused until something restarts us.
            self._warn_once(
                f"webhook registration pending, the API server is away: {type(exc).__name__} {exc}"
            )
        self._task = asyncio.create_task(self._keep(), name="webhook-keeper")

    async def stop(self, unregister: bool = True) -> None:
        """Stop serving; with ``unregister_on_exit`` (and ``unregister``), unregister too."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if unregister and self.config.unregister_on_exit and self.registered:
            await registration.unregister(self.client)
        if isinstance(self.runner, WebhookChild):
            await self.runner.stop()
        if self._loop is not None:
            if self.runner:
                await self._loop.call(self.runner.stop())
            if self._lister is not None:
                await self._loop.call(self._lister.close())
            await self._loop.aclose()
        await self.client.close()

    def _child(self) -> WebhookChild:
        """The child process, with the kubeconfig file and context of our client (none
        in a pod: the child reads the service account as we did)."""
        cfg = self.config
        kubeconfig = getattr(self._kube_config, "fname", None)
        return WebhookChild(
            cfg.host,
            cfg.port,
            cfg.cert_dir,
            kubeconfig=kubeconfig,
            context=getattr(self._kube_config, "context_name", None) if kubeconfig else None,
            log_format=cfg.log_format,
        )

    async def _serve(self) -> Runner:
        """On the webhook loop: the lister's client and the server, both bound to it."""
        cfg = self.config
        self._lister = AsyncClient(config=self._kube_config)
        return await serve(cfg.host, cfg.port, cfg.cert_dir, cluster_lister(self._lister))

    # -- certificates ------------------------------------------------------------------

    async def _refresh_certificates(self) -> None:
        cfg = self.config
        if cfg.certs == CertSource.provided:
            ca = cfg.cert_dir / CA_CERT_FILE
            missing = [f for f in (CERT_FILE, KEY_FILE) if not (cfg.cert_dir / f).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"--webhook-certs=provided: {', '.join(missing)} missing in {cfg.cert_dir} "
                    "(mount the Secret cert-manager writes there)"
                )
            self._ca_pem = ca.read_bytes() if ca.is_file() else None
            return
        if cfg.certs == CertSource.secret:
            self._ca_pem = await shared_tls(
                self.client,
                cfg.namespace,
                cfg.cert_secret,
                cfg.cert_dir,
                dns_names=cfg.dns_names,
                ip_addresses=cfg.ips,
            )
            return
        tls = await asyncio.to_thread(
            webhook_tls, cfg.cert_dir, dns_names=cfg.dns_names, ip_addresses=cfg.ips
        )
        self._ca_pem = tls.ca_pem

    # -- registration ------------------------------------------------------------------

    async def _register(self) -> None:
        cfg = self.config
        if cfg.registration == Registration.none:
            self.registered = True
            return
        if self._ca_pem is None:
            raise ValueError(
                f"registering the webhooks needs the CA: no {CA_CERT_FILE} in {cfg.cert_dir} "
                "(or pass --webhook-registration=none when something else injects caBundle)"
            )
        if cfg.registration == Registration.ca_bundle:
            try:
                written = await registration.register_ca_bundle(self.client, self._ca_pem)
            except registration.NotInstalled as exc:
                self._warn_once(f"webhook caBundle not registered yet: {exc}")
                self.registered = False
                return
            for what in written:
                log.info("caBundle written into %s", what)
        else:
            service = None
            if cfg.service:
                namespace, name = cfg.service.split("/", 1)
                service = registration.ServiceRef(namespace, name, 443)
            url = (
                None if service else cfg.url_base or (self.runner.url_base if self.runner else None)
            )
            await registration.register(
                self.client, url_base=url, service=service, ca_pem=self._ca_pem
            )
        self.registered = True
        self._last_problem = ""

    def _warn_once(self, message: str) -> None:
        if message != self._last_problem:
            log.warning("%s", message)
            self._last_problem = message

    # -- keeping it current ------------------------------------------------------------

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_seconds if self.registered else RETRY_SECONDS)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API may be away for a while; try again later
                self._warn_once(f"refreshing the webhook certificate failed: {exc}")

    async def refresh(self) -> None:
        """One round: renew or re-adopt the certificate, reload it, fix the registration."""
        assert self.runner is not None
        ca_before = self._ca_pem
        await self._refresh_certificates()
        pair = _read_pair(self.config.cert_dir)
        if pair != self._served:
            if isinstance(self.runner, WebhookChild):
                self.runner.reload_certificate()  # it reads the files itself
            else:
                assert self._loop is not None
                # On the server's loop, the only one that uses its SSL context.
                await self._loop.call(_reload(self.runner, self.config.cert_dir))
            self._served = pair
            log.info("webhook serving certificate reloaded")
        # ca-bundle: look every round (a bundle removed by hand comes back); full: only
        # when the CA changed or the last attempt failed.
        full = self.config.registration == Registration.full
        if not (full and self.registered and self._ca_pem == ca_before):
            await self._register()


def api_away(exc: BaseException) -> bool:
    """True for an error that says the API server is not answering now (no connection,
    a timeout, 429 or 5xx), false for one that says no (403, 422): only the first is
    worth waiting out."""
    if isinstance(exc, ApiError):
        code = exc.status.code or 0
        return code == 429 or code >= 500
    return isinstance(exc, httpx.TransportError)


async def _reload(runner: Runner, cert_dir: Path) -> None:
    runner.reload_certificate(cert_dir)


def _read_pair(cert_dir: Path) -> tuple[bytes, bytes]:
    return (cert_dir / CERT_FILE).read_bytes(), (cert_dir / KEY_FILE).read_bytes()


async def shared_tls(
    client: AsyncClient,
    namespace: str,
    name: str,
    cert_dir: Path,
    *,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    attempts: int = 5,
) -> bytes:
    """Make ``cert_dir`` hold the certificates stored in Secret ``namespace/name``.

    The Secret is the source: its files are written to ``cert_dir``, then checked (and
    renewed where needed) by :func:`webhook_tls`; what changed goes back into the Secret
    with its resourceVersion, so two replicas never overwrite each other's CA: the one
    that loses the race reads the winner's and serves that. Returns the CA PEM.
    """
    cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for _ in range(attempts):
        secret = await _get_secret(client, namespace, name)
        stored = _decode(secret)
        for file, data in stored.items():
            _write_if_changed(cert_dir / file, data, private=file.endswith(".key"))
        tls = await asyncio.to_thread(
            webhook_tls, cert_dir, dns_names=dns_names, ip_addresses=ip_addresses
        )
        current = {file: (cert_dir / file).read_bytes() for file in SECRET_FILES}
        if current == stored:
            return tls.ca_pem
        body = _secret(namespace, name, current)
        try:
            if secret is None:
                await client.create(body)
                log.info("webhook certificates stored in Secret %s/%s", namespace, name)
            else:
                assert body.metadata is not None and secret.metadata is not None
                body.metadata.resourceVersion = secret.metadata.resourceVersion
                await client.replace(body)
                log.info("webhook certificates renewed in Secret %s/%s", namespace, name)
            return tls.ca_pem
        except ApiError as exc:
            if exc.status.code != 409:
                raise
            # Another replica wrote first: start over from its copy.
    raise RuntimeError(
        f"Secret {namespace}/{name} kept changing while the webhook certificates were "
        f"being stored ({attempts} attempts); another writer is fighting over it"
    )


async def _get_secret(client: AsyncClient, namespace: str, name: str) -> Secret | None:
    try:
        return await client.get(Secret, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def _decode(secret: Secret | None) -> dict[str, bytes]:
    if secret is None:
        return {}
    data = secret.data or {}
    return {f: base64.b64decode(data[f]) for f in SECRET_FILES if data.get(f)}


def _secret(namespace: str, name: str, files: dict[str, bytes]) -> Secret:
    return Secret(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            labels={
                "app.kubernetes.io/name": "mothership",
                "app.kubernetes.io/component": "webhook",
                "app.kubernetes.io/part-of": "mothership",
            },
        ),
        type="kubernetes.io/tls",
        data={f: base64.b64encode(files[f]).decode() for f in SECRET_FILES},
    )


def _write_if_changed(path: Path, data: bytes, *, private: bool) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600 if private else 0o644)
    tmp.replace(path)
