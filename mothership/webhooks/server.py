"""The HTTPS endpoints the API server calls: admission (AdmissionReview v1) and conversion.

Endpoints:

- ``/mutate-cluster``, ``/mutate-jtr``: defaults as a JSON patch. They also run the
  single-object rules and refuse what breaks them, because mutating webhooks run before
  the API server's schema check: an enum typo then gets our message, which names the fix,
  instead of the schema's bare "Unsupported value".
- ``/validate-cluster``, ``/validate-jtr``: every rule, including the ones that need
  other Clusters, on the final object; warnings go back to the client. ``/validate-cluster``
  also judges ``clusters/scale``, which ``kubectl scale`` uses and which never passes
  through the Cluster's own admission.
- ``/validate-datastore``: a mothership.io DataStore (cluster-scoped, one version).
- ``/convert``: ConversionReview for every kind with two versions, through
  :func:`mothership.api.conversion.convert`.
- ``/healthz``: for probes.

Objects arrive in whichever version the client used (the webhooks are registered for
both); the rule modules convert v1beta1 themselves, so one rule set covers both.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from prometheus_client import Histogram

from mothership.api.conversion import convert
from mothership.api.k0smotron.convert import V1BETA2
from mothership.api.k0smotron.v1beta2 import CLUSTER_CRD
from mothership.webhooks import defaults, validate, validate_capi
from mothership.webhooks.tls import CERT_FILE, KEY_FILE, WebhookTLS, webhook_tls

__all__ = [
    "ListClusters",
    "Runner",
    "WebhookTLS",
    "cluster_lister",
    "make_app",
    "serve",
    "webhook_tls",
]

log = logging.getLogger("mothership.webhooks")

Obj = dict[str, Any]
ListClusters = Callable[[], Awaitable[Iterable[Obj]]]
"""Returns every Cluster in the mothership, any namespace, as v1beta2 dicts."""

PATHS = {
    "mutate_cluster": "/mutate-cluster",
    "validate_cluster": "/validate-cluster",
    "mutate_jtr": "/mutate-jtr",
    "validate_jtr": "/validate-jtr",
    "validate_capi": "/validate-capi",
    "validate_datastore": "/validate-datastore",
    "convert": "/convert",
}

# The API server gives up after the registered timeoutSeconds (10); listing must fail
# before that so the client sees our message rather than a generic timeout.
LIST_TIMEOUT = 5.0
# ConversionReviews for a large LIST carry many objects; the default 1 MiB is too small.
MAX_BODY = 64 * 1024 * 1024

# From the request's arrival in the handler to its answer; finer than the API server's own
# buckets (5, 25, 100 ms ...) because the target is p99 <= 20 ms.
DURATION = Histogram(
    "mothership_webhook_duration_seconds",
    "Time the operator spent answering one admission or conversion request",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

ClusterV1beta2 = create_namespaced_resource(
    CLUSTER_CRD.group, "v1beta2", CLUSTER_CRD.kind, CLUSTER_CRD.plural
)


class Runner:
    """A started webhook server; ``stop()`` closes its listener and open connections."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, context: ssl.SSLContext | None = None
    ) -> None:
        self._runner = runner
        self.host = host
        self.port = port
        self._context = context

    def reload_certificate(self, tls_dir: Path) -> None:
        """Serve the pair now in ``tls_dir`` to every new connection (renewal, rotation)."""
        if self._context is None:
            raise RuntimeError("this server was started without TLS")
        self._context.load_cert_chain(tls_dir / CERT_FILE, tls_dir / KEY_FILE)

    @property
    def url_base(self) -> str:
        """``https://host:port`` as the API server must dial it (for ``register``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    async def stop(self) -> None:
        await self._runner.cleanup()


async def serve(host: str, port: int, tls_dir: Path, list_clusters: ListClusters) -> Runner:
    """Start serving on ``host:port`` (0: any free port, see ``Runner.port``).

    ``tls_dir`` must hold the serving pair written by :func:`webhook_tls`, which the caller
    runs first with the names the API server will dial (it also yields the ``caBundle``).
    """
    cert, key = tls_dir / CERT_FILE, tls_dir / KEY_FILE
    if not (cert.is_file() and key.is_file()):
        raise FileNotFoundError(f"no {CERT_FILE}/{KEY_FILE} in {tls_dir}; call webhook_tls first")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(make_app(list_clusters), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if port == 0 else port
    log.info("webhook server listening on %s:%s", host, bound)
    return Runner(runner, host, bound, context)


def cluster_lister(client: AsyncClient) -> ListClusters:
    """A :data:`ListClusters` reading through ``client`` (v1beta2, all namespaces)."""

    async def list_clusters() -> list[Obj]:
        return [obj.to_dict() async for obj in client.list(ClusterV1beta2, namespace="*")]

    return list_clusters


def make_app(list_clusters: ListClusters) -> web.Application:
    """The aiohttp application; separate from :func:`serve` so tests can run it without TLS."""
    handlers = _Handlers(list_clusters)
    app = web.Application(client_max_size=MAX_BODY)
    for name, path in PATHS.items():
        app.router.add_post(path, _timed(path.lstrip("/"), getattr(handlers, name)))
    app.router.add_get("/healthz", handlers.healthz)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _timed(endpoint: str, handler: Handler) -> Handler:
    """``handler`` observed into :data:`DURATION`: the operator's side of the latency the
    API server reports (the rest is the network, TLS and waiting to be read)."""
    histogram = DURATION.labels(endpoint)

    async def timed(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            histogram.observe(time.perf_counter() - started)

    return timed


class _Denied(Exception):
    """Refuse the request with this message and HTTP-like code."""

    def __init__(self, message: str, code: int = 400, problems: Iterable[Any] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.problems = list(problems)


class _Handlers:
    def __init__(self, list_clusters: ListClusters) -> None:
        self.list_clusters = list_clusters

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def mutate_cluster(self, request: web.Request) -> web.Response:
        return await self._admit(request, "Cluster", self._mutate)

    async def mutate_jtr(self, request: web.Request) -> web.Response:
        return await self._admit(request, "JoinTokenRequest", self._mutate)

    async def validate_cluster(self, request: web.Request) -> web.Response:
        return await self._admit(request, "Cluster", self._validate)

    async def validate_jtr(self, request: web.Request) -> web.Response:
        return await self._admit(request, "JoinTokenRequest", self._validate)

    async def validate_datastore(self, request: web.Request) -> web.Response:
        return await self._admit(request, "DataStore", self._validate)

    async def validate_capi(self, request: web.Request) -> web.Response:
        """The Cluster API providers' kinds, one endpoint (the kind is in the request)."""
        return await self._admit(request, "", self._validate_capi)

    async def convert(self, request: web.Request) -> web.Response:
        review = await _read_json(request)
        req = review.get("request") if isinstance(review, dict) else None
        if not isinstance(req, dict):
            raise web.HTTPBadRequest(text="not a ConversionReview: no request")
        response: Obj = {"uid": req.get("uid", "")}
        try:
            desired = req["desiredAPIVersion"]
            objects = req.get("objects") or []
            response["convertedObjects"] = [convert(obj, desired) for obj in objects]
            response["result"] = {"status": "Success"}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("conversion failed: %s", exc)
            response["result"] = {"status": "Failure", "message": f"conversion failed: {exc}"}
        return web.json_response(
            {
                "apiVersion": review.get("apiVersion", "apiextensions.k8s.io/v1"),
                "kind": "ConversionReview",
                "response": response,
            }
        )

    async def _admit(
        self,
        request: web.Request,
        kind: str,
        decide: Callable[[Obj, str], Awaitable[Obj]],
    ) -> web.Response:
        review = await _read_json(request)
        req = review.get("request") if isinstance(review, dict) else None
        if not isinstance(req, dict):
            raise web.HTTPBadRequest(text="not an AdmissionReview: no request")
        uid = req.get("uid", "")
        try:
            response = await decide(req, kind)
        except _Denied as denied:
            response = _denial(str(denied), denied.code, denied.problems, _subject(req, kind))
        except Exception as exc:  # a bug must answer, not hang the API server's request
            log.exception("admission of %s failed", kind)
            response = _denial(f"internal error in the mothership webhook: {exc}", 500)
        response["uid"] = uid
        return web.json_response(
            {
                "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                "kind": "AdmissionReview",
                "response": response,
            }
        )

    async def _mutate(self, req: Obj, kind: str) -> Obj:
        obj, old = _objects(req, kind)
        if obj is None:
            return {"allowed": True}
        try:
            ops = defaults.admission_patch(obj, old)
            if kind == "JoinTokenRequest":
                user = (req.get("userInfo") or {}).get("username") or ""
                ops += defaults.requester_ops(obj, old, user)
            errors = validate.validate(defaults.apply(obj, ops), old).errors
        except ValueError as exc:
            raise _Denied(str(exc)) from exc
        if errors:
            raise _Denied(_message(errors), 422, errors)
        response: Obj = {"allowed": True}
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        return response

    async def _validate(self, req: Obj, kind: str) -> Obj:
        if kind == "Cluster" and req.get("subResource") == "scale":
            return await self._validate_scale(req)
        obj, old = _objects(req, kind)
        if obj is None:
            return {"allowed": True}
        try:
            others = await self._others() if validate.needs_other_clusters(obj, old) else []
            result = validate.validate(obj, old, others)
        except ValueError as exc:
            raise _Denied(str(exc)) from exc
        if result.errors:
            raise _Denied(_message(result.errors), 422, result.errors)
        response: Obj = {"allowed": True}
        if result.warnings:
            response["warnings"] = [str(w) for w in result.warnings]
        return response

    async def _validate_capi(self, req: Obj, _: str) -> Obj:
        kind = (req.get("kind") or {}).get("kind")
        if kind not in validate_capi.KINDS:
            return {"allowed": True}
        obj, old = _objects(req, kind)
        if obj is None:
            return {"allowed": True}
        try:
            others = await self._others() if kind == "K0smotronControlPlane" else []
            result = validate_capi.validate(obj, old, others)
        except ValueError as exc:
            raise _Denied(str(exc)) from exc
        if result.errors:
            raise _Denied(_message(result.errors), 422, result.errors)
        response: Obj = {"allowed": True}
        if result.warnings:
            response["warnings"] = [str(w) for w in result.warnings]
        return response

    async def _validate_scale(self, req: Obj) -> Obj:
        new, old = req.get("object"), req.get("oldObject")
        if req.get("operation") != "UPDATE":
            return {"allowed": True}
        if not (isinstance(new, dict) and isinstance(old, dict)):
            return {"allowed": True}
        new_replicas = (new.get("spec") or {}).get("replicas")
        old_replicas = (old.get("spec") or {}).get("replicas")
        if new_replicas == old_replicas:
            return {"allowed": True}
        key = (req.get("namespace"), req.get("name"))
        for cluster in await self._others():
            metadata = cluster.get("metadata") or {}
            if (metadata.get("namespace"), metadata.get("name")) == key:
                errors = validate.validate_scale(cluster, old_replicas, new_replicas).errors
                if errors:
                    raise _Denied(_message(errors), 422, errors)
        return {"allowed": True}

    async def _others(self) -> list[Obj]:
        try:
            clusters = await asyncio.wait_for(self.list_clusters(), LIST_TIMEOUT)
        except Exception as exc:
            log.warning("listing Clusters failed: %s", exc)
            raise _Denied(f"cannot list Clusters to check node ports, retry: {exc}", 500) from exc
        return [convert(c, V1BETA2) if c.get("apiVersion") != V1BETA2 else c for c in clusters]


def _objects(req: Obj, kind: str) -> tuple[Obj | None, Obj | None]:
    """(object, oldObject) to judge; object None when this request needs no judging."""
    if req.get("operation") not in ("CREATE", "UPDATE"):
        return None, None
    obj = req.get("object")
    if not isinstance(obj, dict):
        raise _Denied("the AdmissionReview has no object")
    if obj.get("kind") != kind:
        raise _Denied(f"this endpoint handles {kind}, not {obj.get('kind')!r}")
    metadata = obj.get("metadata")
    if req.get("namespace") and not (isinstance(metadata, dict) and metadata.get("namespace")):
        # The node port check tells Clusters apart by namespace/name.
        metadata = dict(metadata) if isinstance(metadata, dict) else {}
        metadata["namespace"] = req["namespace"]
        obj = {**obj, "metadata": metadata}
    old = req.get("oldObject") if req.get("operation") == "UPDATE" else None
    return obj, old if isinstance(old, dict) else None


def _message(problems: list[validate.Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def _denial(
    message: str, code: int, problems: Iterable[Any] = (), subject: Obj | None = None
) -> Obj:
    """A refusal shaped like the API server's own validation errors.

    With reason Invalid, the object's kind and name and one cause per field, kubectl prints
    ``The Cluster "x" is invalid: <field>: <message>`` exactly as for a schema error, and
    other clients get the field paths in machine-readable form.
    """
    status: Obj = {"code": code, "message": message}
    causes = [
        {"type": "FieldValueInvalid", "field": p.path, "message": p.message}
        for p in problems
        if isinstance(p, validate.Problem)
    ]
    if causes:
        status["reason"] = "Invalid"
        status["details"] = {**(subject or {}), "causes": causes}
    return {"allowed": False, "status": status}


def _subject(req: Obj, kind: str) -> Obj:
    """``details`` naming the object under review; a scale request names its Cluster."""
    resource = req.get("resource")
    resource = resource if isinstance(resource, dict) else {}
    kind = kind or str((req.get("kind") or {}).get("kind") or "")
    subject = {"group": resource.get("group"), "kind": kind, "name": req.get("name")}
    return {key: value for key, value in subject.items() if value}


async def _read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from exc
