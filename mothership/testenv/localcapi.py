"""Cluster API's core controller manager as a component of the local mothership (`--capi`).

Real Cluster API, built from its module at the pinned release (pins.CAPI_VERSION), runs
beside the API server like the operator does: a supervised process whose webhooks the API
server calls at 127.0.0.1. Upstream installs it with kustomize and cert-manager; here the
same objects are made from the release's own `config/` directory, in Python:

- the CRDs of `config/crd/bases`, each with the conversion webhook upstream's
  `config/crd/patches` add, pointed at the manager's URL;
- the admission webhooks of `config/webhook/manifests.yaml`, from a Service reference to
  a URL, under names of our own;
- a serving certificate from the mothership's CA in place of cert-manager's.

The webhook configurations are removed when the manager stops (their failurePolicy is
Fail): a mothership brought up later without `--capi` is not left with admission hooks
nobody serves. The CRDs and the objects stay, as data always does.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

from mothership import pki
from mothership.testenv import paths
from mothership.testenv.config import MothershipConfig
from mothership.testenv.pins import CAPI_MODULE, CAPI_VERSION
from mothership.testenv.ports import free_ports

COMPONENT = "cluster-api"
PORT_NAMES = ("capi-webhook", "capi-health", "capi-diagnostics")
FIELD_MANAGER = "mothership-dev-capi"
# Our names for upstream's two webhook configurations (kustomize prefixes them "capi-").
WEBHOOK_CONFIG_NAMES = {
    "MutatingWebhookConfiguration": "mothership-capi-mutating",
    "ValidatingWebhookConfiguration": "mothership-capi-validating",
}
CONVERSION_PATH = "/convert"
FEATURE_GATES = "ClusterTopology=true"
CONVERSION_REVIEW_VERSIONS = ["v1"]


class CapiError(RuntimeError):
    """Cluster API cannot be set up here; the message says what is missing."""


def release_dir() -> Path:
    """The pinned release's module, as `mothership tools install` downloaded it."""
    return paths.go_root() / "pkg" / "mod" / f"{CAPI_MODULE}@{CAPI_VERSION}"


def manager_binary() -> Path:
    return paths.capi_bin_dir() / "capi-manager"


def check_installed() -> None:
    missing = [p for p in (manager_binary(), release_dir() / "config") if not p.exists()]
    if missing:
        raise CapiError(
            f"Cluster API {CAPI_VERSION} is not built here ({', '.join(map(str, missing))} "
            "missing); run `mothership tools install` (it builds Cluster API from its module)"
        )


# --- pure: upstream's config made fit for a manager at a URL ------------------------------------


def with_conversion(crd: dict[str, Any], url: str, ca_pem: bytes) -> dict[str, Any]:
    """The CRD with conversion by the manager's webhook, as upstream's kustomize patch sets
    it, but at a URL with our CA instead of a Service and cert-manager's injection."""
    out = copy.deepcopy(crd)
    out["spec"]["conversion"] = {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": CONVERSION_REVIEW_VERSIONS,
            "clientConfig": {
                "url": url.rstrip("/") + CONVERSION_PATH,
                "caBundle": base64.b64encode(ca_pem).decode(),
            },
        },
    }
    return out


def webhook_configurations(manifests: str, url: str, ca_pem: bytes) -> list[dict[str, Any]]:
    """Upstream's webhook configurations with every Service reference turned into the same
    path at `url`, the CA bundle set, and our names."""
    bundle = base64.b64encode(ca_pem).decode()
    out = []
    for doc in yaml.safe_load_all(manifests):
        if not doc:
            continue
        kind = doc.get("kind")
        if kind not in WEBHOOK_CONFIG_NAMES:
            raise CapiError(f"unexpected {kind} in Cluster API's webhook manifests")
        doc = copy.deepcopy(doc)
        doc["metadata"] = {"name": WEBHOOK_CONFIG_NAMES[kind]}
        for hook in doc.get("webhooks") or []:
            service = hook["clientConfig"].get("service") or {}
            path = service.get("path")
            if not path:
                raise CapiError(f"webhook {hook.get('name')} has no service path to serve")
            hook["clientConfig"] = {"url": url.rstrip("/") + path, "caBundle": bundle}
        out.append(doc)
    return out


def crds(config: Path, url: str, ca_pem: bytes) -> list[dict[str, Any]]:
    """Every CRD of the release, with conversion through the manager."""
    found = sorted((config / "crd" / "bases").glob("*.yaml"))
    if not found:
        raise CapiError(f"no CRDs in {config / 'crd' / 'bases'}")
    return [with_conversion(yaml.safe_load(p.read_text()), url, ca_pem) for p in found]


# --- the component ------------------------------------------------------------------------------


def webhook_url(cfg: MothershipConfig) -> str:
    return f"https://127.0.0.1:{cfg.ports['capi-webhook']}"


def health_url(cfg: MothershipConfig) -> str:
    return f"http://127.0.0.1:{cfg.ports['capi-health']}/readyz"


def state(cfg: MothershipConfig) -> Path:
    return cfg.state_dir / "cluster-api"


def prepare(cfg: MothershipConfig) -> None:
    """Ports, the manager's kubeconfig (a copy of the admin one, as the operator gets) and
    its serving certificate, issued from the mothership's CA for 127.0.0.1."""
    missing = [name for name in PORT_NAMES if name not in cfg.ports]
    if missing:
        cfg.ports.update(free_ports(missing))
        cfg.save()
    d = state(cfg)
    (d / "certs").mkdir(parents=True, exist_ok=True)
    kubeconfig = d / "kubeconfig"
    kubeconfig.touch(mode=0o600, exist_ok=True)
    kubeconfig.write_bytes(cfg.kubeconfig.read_bytes())
    crt, key = d / "certs" / "tls.crt", d / "certs" / "tls.key"
    if not crt.exists() or not key.exists():
        ca = pki.CertKey(
            (cfg.pki_dir / "ca.crt").read_bytes(), (cfg.pki_dir / "ca.key").read_bytes()
        )
        made = pki.issue_cert(
            ca,
            "cluster-api-webhook",
            server=True,
            ip_addresses=("127.0.0.1",),
            dns_names=("localhost",),
        )
        key.touch(mode=0o600, exist_ok=True)
        key.write_bytes(made.key_pem)
        crt.write_bytes(made.cert_pem)


def argv(cfg: MothershipConfig) -> list[str]:
    ports = cfg.ports
    return [
        str(manager_binary()),
        f"--kubeconfig={state(cfg) / 'kubeconfig'}",
        f"--webhook-port={ports['capi-webhook']}",
        f"--webhook-cert-dir={state(cfg) / 'certs'}",
        f"--health-addr=127.0.0.1:{ports['capi-health']}",
        f"--diagnostics-address=127.0.0.1:{ports['capi-diagnostics']}",
        "--insecure-diagnostics",
        "--leader-elect=false",
        # ClusterClass (Cluster.spec.topology): alpha upstream and off by default; platform
        # teams hand out clusters from classes, so the local mothership serves them.
        f"--feature-gates={FEATURE_GATES}",
    ]


def register(cfg: MothershipConfig) -> list[str]:
    """Apply the CRDs and webhook configurations; return the CRD names."""
    from lightkube.codecs import from_dict

    from mothership.testenv import kube

    ca_pem = (cfg.pki_dir / "ca.crt").read_bytes()
    url = webhook_url(cfg)
    config = release_dir() / "config"
    client = kube.client(cfg.kubeconfig, field_manager=FIELD_MANAGER)
    names = []
    for doc in crds(config, url, ca_pem):
        client.apply(from_dict(doc), force=True)
        names.append(doc["metadata"]["name"])
    manifests = (config / "webhook" / "manifests.yaml").read_text()
    for doc in webhook_configurations(manifests, url, ca_pem):
        client.apply(from_dict(doc), force=True)
    return names


def unregister(cfg: MothershipConfig) -> None:
    """Remove the admission webhooks (kept: the CRDs, and with them every object)."""
    from lightkube.core.exceptions import ApiError
    from lightkube.resources.admissionregistration_v1 import (
        MutatingWebhookConfiguration,
        ValidatingWebhookConfiguration,
    )

    from mothership.testenv import kube

    client = kube.client(cfg.kubeconfig, field_manager=FIELD_MANAGER)
    for kind, name in (
        (MutatingWebhookConfiguration, WEBHOOK_CONFIG_NAMES["MutatingWebhookConfiguration"]),
        (ValidatingWebhookConfiguration, WEBHOOK_CONFIG_NAMES["ValidatingWebhookConfiguration"]),
    ):
        try:
            client.delete(kind, name)
        except ApiError as exc:
            if exc.status.code != 404:
                raise


def hand_over_crds(cfg: MothershipConfig) -> list[str]:
    """Let clusterctl take over the CRDs `--capi` left: their conversion still points at
    the stopped manager's URL, and clusterctl's patch adds a Service beside it, which the API
    server refuses (one of url or service). Conversion is set to None until clusterctl sets
    its own; the CRDs and every object stay. Returns the CRDs changed."""
    from lightkube.core.exceptions import ApiError
    from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
    from lightkube.types import PatchType

    from mothership.testenv import kube

    client = kube.client(cfg.kubeconfig, field_manager=FIELD_MANAGER)
    changed = []
    for path in sorted((release_dir() / "config" / "crd" / "bases").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        try:
            crd = client.get(CustomResourceDefinition, name)
        except ApiError as exc:
            if exc.status.code == 404:
                continue
            raise
        conversion = crd.spec.conversion
        config = conversion.webhook.clientConfig if conversion and conversion.webhook else None
        if config is None or not config.url:
            continue
        patch = [{"op": "replace", "path": "/spec/conversion", "value": {"strategy": "None"}}]
        client.patch(CustomResourceDefinition, name, patch, patch_type=PatchType.JSON)
        changed.append(name)
    return changed
