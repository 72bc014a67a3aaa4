"""The local mothership's certificates, keys and kubeconfigs, as files in its state dir.

Generated once: an existing file is never replaced, so restarting a mothership keeps its
CA and every kubeconfig handed out stays valid. The one exception is a serving certificate
that no longer names the node's address (a real node moved between the host's network and
a machine, see node_host.py): it is issued again from the same CA.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509

from mothership import pki
from mothership.testenv.config import MothershipConfig

NODE_NAME = "mothership-node"
# (file stem, CN, organizations) of the client certificates signed by the cluster CA.
CLIENTS = (
    ("admin", "mothership-admin", ("system:masters",)),
    ("controller-manager", "system:kube-controller-manager", ()),
    ("scheduler", "system:kube-scheduler", ()),
    ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
    ("kube-proxy", "system:kube-proxy", ()),
    ("kubelet", f"system:node:{NODE_NAME}", ("system:nodes",)),
    ("kwok", "system:kwok-controller", ("system:masters",)),
)
# Kubeconfigs: (file name, client cert stem).
KUBECONFIGS = (
    ("kubeconfig", "admin"),
    ("controller-manager.kubeconfig", "controller-manager"),
    ("scheduler.kubeconfig", "scheduler"),
    ("kube-proxy.kubeconfig", "kube-proxy"),
    ("kubelet.kubeconfig", "kubelet"),
    ("kwok.kubeconfig", "kwok"),
)


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def _load(stem: Path) -> pki.CertKey | None:
    crt, key = stem.with_suffix(".crt"), stem.with_suffix(".key")
    if crt.exists() and key.exists():
        return pki.CertKey(crt.read_bytes(), key.read_bytes())
    return None


def _ensure(stem: Path, make: Callable[[], pki.CertKey], ips: Sequence[str] = ()) -> pki.CertKey:
    existing = _load(stem)
    if existing and set(ips) <= _ip_sans(existing):
        return existing
    made = make()
    _write(stem.with_suffix(".crt"), made.cert_pem, 0o644)
    _write(stem.with_suffix(".key"), made.key_pem)
    return made


def _ip_sans(cert: pki.CertKey) -> set[str]:
    try:
        sans = cert.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return {str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)}


def ensure_pki(cfg: MothershipConfig) -> None:
    d = cfg.pki_dir
    d.mkdir(parents=True, exist_ok=True)
    ca = _ensure(d / "ca", lambda: pki.new_ca(f"mothership-{cfg.name}-ca"))
    fp_ca = _ensure(d / "front-proxy-ca", lambda: pki.new_ca(f"mothership-{cfg.name}-front-proxy"))
    _ensure(
        d / "front-proxy-client", lambda: pki.issue_cert(fp_ca, "front-proxy-client", client=True)
    )
    _ensure(
        d / "apiserver",
        lambda: pki.issue_cert(
            ca,
            "kube-apiserver",
            server=True,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=sorted({"127.0.0.1", cfg.api_host, cfg.service_ip}),
            validity_days=3650,
        ),
        ips=(cfg.api_host,),
    )
    _ensure(
        d / "kubelet-serving",
        lambda: pki.issue_cert(
            ca,
            NODE_NAME,
            server=True,
            dns_names=(NODE_NAME, "localhost"),
            ip_addresses=sorted({"127.0.0.1", cfg.api_host}),
            validity_days=3650,
        ),
        ips=(cfg.api_host,),
    )
    for stem, cn, orgs in CLIENTS:
        _ensure(
            d / stem,
            functools.partial(
                pki.issue_cert, ca, cn, organizations=orgs, client=True, validity_days=3650
            ),
        )
    if not (d / "sa.key").exists():
        private, public = pki.new_service_account_key()
        _write(d / "sa.pub", public, 0o644)
        _write(d / "sa.key", private)
    write_kubeconfigs(cfg)


def write_kubeconfigs(cfg: MothershipConfig) -> None:
    """(Re)write kubeconfigs: the server URL follows the ports of the current start."""
    d = cfg.pki_dir
    ca_pem = (d / "ca.crt").read_bytes()
    for filename, stem in KUBECONFIGS:
        target = cfg.state_dir / filename if filename == "kubeconfig" else d / filename
        text = pki.kubeconfig(
            cluster_name=f"mothership-{cfg.name}",
            server=cfg.api_url,
            ca_pem=ca_pem,
            user=stem,
            client_cert_pem=(d / f"{stem}.crt").read_bytes(),
            client_key_pem=(d / f"{stem}.key").read_bytes(),
            context=f"mothership-{cfg.name}" if stem == "admin" else None,
        )
        _write(target, text.encode())
