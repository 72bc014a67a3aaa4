"""Users from a central identity provider act in a tenant, for real.

A real OpenID provider (zitadel/oidc's, built from its module, see
mothership/testenv/oidc_provider.py) runs on the host over TLS with two users in two groups.
A Cluster trusts it through spec.kubernetes.authentication; `mothership cluster kubeconfig
--oidc` writes a kubeconfig with no credential in it, whose user is `mothership oidc-login`.
kubectl runs that plugin, which prints a link and a code; the test, as the person at the
browser, logs in on the provider's own pages; kubectl then acts as that user with its
groups, and the tenant's RBAC decides. A second client of the provider hands out ID tokens
that live 20 s: the plugin renews them with the refresh token without a prompt, and asks for a
login again once the session is revoked at the provider. A third client is a native one
(no secret, a loopback redirect URI): with `--oidc-flow browser` the plugin logs the person in
by the code flow with PKCE, the provider's page sending the browser back to the plugin on
127.0.0.1. Editing the issuer's claim mappings
to CEL expressions (user, groups, an extra attribute, a claim rule and a user rule that turns
one person away) takes effect without a pod restart.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.types import PatchType

from mothership.identity import device_login
from mothership.testenv import kube, oidc_provider
from mothership.testenv.local import LocalMothership
from mothership.testenv.oidc_provider import OidcClient, User
from tests.integration.test_kubernetes_distribution import (
    AVAILABLE_WITHIN,
    RESTRICTED,
    Cluster,
    _cluster,
    _condition,
    _exists,
    _kubectl,
    _tenant_kubeconfig,
    _wait_condition,
)
from tests.operator_proc import Operator

ALICE = User("alice", "alice-password", "alice@example.com", ("ops",))
BOB = User("bob", "bob-password", "bob@example.com", ("dev",))
LOGIN_WITHIN = 90
# ID tokens shorter-lived than the plugin's margin: every command after the login renews.
SHORT = OidcClient("kubernetes-short", "short-secret", id_token_seconds=20)
# A native client: the browser login (code flow with PKCE, any port on the loopback).
NATIVE = OidcClient("kubectl", "", redirect_uris=("http://127.0.0.1/callback",))
# The kubelet refreshes a mounted ConfigMap within about a minute, and the API server checks
# its file at least once a minute.
RELOAD_WITHIN = 240


@pytest.fixture
def ns(kc: Client) -> Iterator[str]:
    name = f"idp-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name, labels=RESTRICTED)))
    yield name
    kc.delete(Namespace, name)
    # Gone before the next module: an operator installed there would act on what is left.
    kube.wait_until("the test namespace gone", lambda: not _exists(kc, Namespace, name), 180)


@pytest.fixture(scope="module")
def idp(
    mothership_real: LocalMothership, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[oidc_provider.Provider]:
    # On the host address the pods reach (as the node mirrors are).
    provider = oidc_provider.start(
        tmp_path_factory.mktemp("idp"),
        mothership_real.cfg.host_ip,
        [ALICE, BOB],
        clients=(OidcClient("kubernetes", "kubernetes-secret"), SHORT, NATIVE),
    )
    yield provider
    provider.stop()


def _authentication(idp: oidc_provider.Provider, prefix: str) -> dict[str, Any]:
    return {
        "jwt": [
            {
                "issuer": {
                    "url": idp.issuer,
                    "audiences": [c.id for c in idp.clients],
                    "certificateAuthority": idp.ca_pem,
                },
                "claimMappings": {
                    "username": {"claim": "email", "prefix": prefix},
                    "groups": {"claim": "groups", "prefix": prefix},
                },
            }
        ]
    }


def _expressions(idp: oidc_provider.Provider) -> dict[str, Any]:
    """The same issuer, with the user named by CEL expressions over the token's claims."""
    authentication = _authentication(idp, "unused:")
    (item,) = authentication["jwt"]
    item["claimMappings"] = {
        "username": {"expression": '"corp:" + claims.email'},
        "groups": {"expression": 'dyn(claims.groups).map(g, "corp:" + g)'},
        "extra": [{"key": "example.com/tenant", "valueExpression": '"team"'}],
    }
    item["claimValidationRules"] = [
        {"expression": "claims.email_verified == true", "message": "email not verified"}
    ]
    item["userValidationRules"] = [
        {"expression": 'user.username != "corp:bob@example.com"', "message": "bob is out"}
    ]
    return authentication


class Kubectl:
    """kubectl with the `--oidc` kubeconfig, as one person on one machine (own token cache)."""

    def __init__(self, ms: LocalMothership, kubeconfig: Path, home: Path) -> None:
        mothership = shutil.which("mothership")
        assert mothership, "the mothership command is not on PATH"
        home.mkdir(parents=True, exist_ok=True)
        self.argv = [str(ms.cfg.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig)]
        self.env = {
            "PATH": f"{Path(mothership).parent}:{ms.cfg.bin_dir}:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args], capture_output=True, text=True, env=self.env, timeout=60
        )

    def login_and_run(
        self, idp: oidc_provider.Provider, user: User, *args: str, browser: bool = False
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        """Run kubectl; when the plugin prints its link, log in there as ``user`` (the device
        page and its code, or with ``browser`` the login page that sends the browser back to
        the plugin). Returns the result and the seconds from the command to its answer."""
        started = time.monotonic()
        proc = subprocess.Popen(
            [*self.argv, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        assert proc.stderr is not None and proc.stdout is not None
        stderr: list[str] = []
        approved = threading.Event()
        problems: list[BaseException] = []

        def person() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                stderr.append(line)
                found = re.search(
                    r"To log in to \S+, open (\S+)$"
                    if browser
                    else r"\(or (\S+) and enter the code (\S+)\)",
                    line,
                )
                if found and not approved.is_set():
                    try:
                        if browser:
                            oidc_provider.log_in_at(idp, found[1], user)
                        else:
                            oidc_provider.approve_device(idp, found[1], found[2], user)
                    except BaseException as exc:  # reported below, with kubectl's output
                        problems.append(exc)
                        proc.kill()  # the plugin would poll until the code expires
                    approved.set()

        reader = threading.Thread(target=person, daemon=True)
        reader.start()
        try:
            out = proc.stdout.read()
            proc.wait(timeout=LOGIN_WITHIN)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(timeout=10)
        took = time.monotonic() - started
        assert not problems, f"the login page refused: {problems[0]}\n{''.join(stderr)}"
        assert approved.is_set(), f"the plugin printed no login link:\n{''.join(stderr)}"
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(stderr)), took


def _oidc_kubeconfig(
    ms: LocalMothership, ns: str, client: OidcClient, path: Path, *extra: str
) -> dict[str, Any]:
    made = subprocess.run(
        ["mothership", "cluster", "kubeconfig", "team", "--oidc",
         "--oidc-client-id", client.id, "--oidc-client-secret", client.secret, *extra,
         "--output-file", str(path), "--kubeconfig", str(ms.cfg.kubeconfig), "-n", ns],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    written: dict[str, Any] = yaml.safe_load(path.read_text())
    return written


def _cache_entry(home: Path) -> tuple[Path, dict[str, Any]]:
    (path,) = (home / ".cache" / "mothership" / "oidc").glob("*.json")
    entry: dict[str, Any] = json.loads(path.read_text())
    return path, entry


def _revoke(idp: oidc_provider.Provider, client: OidcClient, refresh_token: str) -> None:
    """The provider's admin ends the session (RFC 7009 revocation of its refresh token)."""
    with idp.http() as http:
        found = http.get(f"{idp.issuer}/.well-known/openid-configuration").json()
        done = http.post(
            found["revocation_endpoint"],
            data={"token": refresh_token, "token_type_hint": "refresh_token"},
            auth=(client.id, client.secret),
        )
    assert done.status_code == 200, done.text


def _whoami(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    info: dict[str, Any] = json.loads(result.stdout)["status"]["userInfo"]
    return info


def test_users_of_the_identity_provider_act_in_the_tenant_with_their_groups(
    mothership_real: LocalMothership,
    kc: Client,
    operator: Operator,
    ns: str,
    idp: oidc_provider.Provider,
    tmp_path: Path,
) -> None:
    ms = mothership_real
    kc.create(
        _cluster(
            "team",
            ns,
            storage={"type": "kine"},
            kubernetes={"authentication": _authentication(idp, "oidc:")},
        )
    )
    _wait_condition(ms, kc, operator, "team", ns, "Available", AVAILABLE_WITHIN)
    admin = _tenant_kubeconfig(kc, "team", ns, tmp_path / "admin.kubeconfig")
    # The tenant's RBAC: the provider's group ops may read, no more.
    bound = _kubectl(ms, admin, "create", "clusterrolebinding", "ops-view",
                     "--clusterrole=view", "--group=oidc:ops")  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    # `view` is an aggregated ClusterRole: its rules are filled in by the controller-manager,
    # which may start its controllers a little after the API server is Available.
    can_i = ("auth", "can-i", "list", "namespaces", "--as=oidc:probe", "--as-group=oidc:ops")
    kube.wait_until(
        "the view ClusterRole aggregated (group oidc:ops may list namespaces)",
        lambda: _kubectl(ms, admin, *can_i).returncode == 0,
        60,
    )

    path = tmp_path / "team-oidc.kubeconfig"
    written = _oidc_kubeconfig(ms, ns, idp.clients[0], path)
    (user,) = written["users"]
    assert set(user["user"]) == {"exec"}, "the kubeconfig must hold no credential"
    assert user["user"]["exec"]["args"][:2] == ["oidc-login", "--issuer"]

    alice = Kubectl(ms, path, tmp_path / "alice")
    whoami, took = alice.login_and_run(idp, ALICE, "auth", "whoami", "-o", "json")
    info = _whoami(whoami)
    assert info["username"] == "oidc:alice@example.com"
    assert "oidc:ops" in info["groups"] and "system:authenticated" in info["groups"]
    print(f"\nfirst kubectl command with a device login: {took:.1f}s")

    # The cached ID token serves the next commands: no second login.
    listed = alice.run("get", "namespaces", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert "namespace/kube-system" in listed.stdout
    assert "To log in" not in listed.stderr
    refused = alice.run("create", "namespace", "not-for-alice")
    assert refused.returncode != 0
    assert 'User "oidc:alice@example.com" cannot create resource "namespaces"' in refused.stderr

    bob = Kubectl(ms, path, tmp_path / "bob")
    denied, _ = bob.login_and_run(idp, BOB, "get", "namespaces")
    assert denied.returncode != 0
    assert 'User "oidc:bob@example.com" cannot list resource "namespaces"' in denied.stderr

    # A wrong password is refused on the provider's page, and kubectl gets no token.
    with pytest.raises(AssertionError, match="login refused"):
        Kubectl(ms, path, tmp_path / "mallory").login_and_run(
            idp, User("alice", "wrong", "alice@example.com"), "get", "namespaces"
        )

    # Short-lived ID tokens: renewed with the refresh token, no prompt, the same person.
    _oidc_kubeconfig(ms, ns, SHORT, tmp_path / "short.kubeconfig")
    short = Kubectl(ms, tmp_path / "short.kubeconfig", tmp_path / "alice-short")
    first, _ = short.login_and_run(idp, ALICE, "auth", "whoami", "-o", "json")
    assert _whoami(first)["username"] == "oidc:alice@example.com"
    cache, logged_in = _cache_entry(tmp_path / "alice-short")
    assert logged_in.get("refresh_token"), f"no refresh token was cached: {sorted(logged_in)}"
    renewed = short.run("get", "namespaces", "-o", "name")
    assert renewed.returncode == 0, renewed.stderr
    assert "To log in" not in renewed.stderr, "the plugin asked again instead of renewing"
    _, after = _cache_entry(tmp_path / "alice-short")
    assert after["id_token"] != logged_in["id_token"], "the expiring ID token was not renewed"
    assert after["refresh_token"] != logged_in["refresh_token"], "the provider rotates them"
    assert device_login.token_expiry(after["id_token"]) > device_login.token_expiry(
        logged_in["id_token"]
    )
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # Revoked at the provider: the next command says so and asks for a login.
    _revoke(idp, SHORT, after["refresh_token"])
    again, _ = short.login_and_run(idp, ALICE, "auth", "whoami", "-o", "json")
    assert _whoami(again)["username"] == "oidc:alice@example.com"
    assert "did not renew the session" in again.stderr, again.stderr

    # The browser login (a native client without a secret: the code flow with PKCE, the
    # provider sending the browser back to the plugin on 127.0.0.1): the same person.
    written = _oidc_kubeconfig(
        ms, ns, NATIVE, tmp_path / "native.kubeconfig", "--oidc-flow", "browser"
    )
    assert written["users"][0]["user"]["exec"]["args"][-2:] == ["--flow", "browser"]
    native = Kubectl(ms, tmp_path / "native.kubeconfig", tmp_path / "alice-native")
    via_browser, took = native.login_and_run(
        idp, ALICE, "auth", "whoami", "-o", "json", browser=True
    )
    info = _whoami(via_browser)
    assert info["username"] == "oidc:alice@example.com"
    assert "oidc:ops" in info["groups"]
    print(f"first kubectl command with a browser login: {took:.1f}s")
    cached = native.run("get", "namespaces", "-o", "name")
    assert cached.returncode == 0, cached.stderr
    assert "To log in" not in cached.stderr
    _, entry = _cache_entry(tmp_path / "alice-native")
    assert entry.get("refresh_token"), "a native client is given a refresh token too"

    # Edited in place to CEL expressions: they apply without restarting the control plane.
    sts_before = kc.get(StatefulSet, "kmc-team", namespace=ns)
    pod_before = kc.get(Pod, "kmc-team-0", namespace=ns)
    kc.patch(
        Cluster,
        "team",
        {"spec": {"kubernetes": {"authentication": _expressions(idp)}}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )
    edited = time.monotonic()
    kube.wait_until(
        "the API server naming alice by the new expression",
        lambda: (
            _whoami(alice.run("auth", "whoami", "-o", "json"))["username"]
            == "corp:alice@example.com"
        ),
        RELOAD_WITHIN,
        interval=3,
    )
    print(f"claim mapping edited to applied: {time.monotonic() - edited:.1f}s")
    info = _whoami(alice.run("auth", "whoami", "-o", "json"))
    assert "corp:ops" in info["groups"] and "oidc:ops" not in info["groups"]
    assert info.get("extra") == {"example.com/tenant": ["team"]}
    # The user validation rule turns bob away before authorization: 401, not 403.
    turned_away = bob.run("get", "namespaces")
    assert turned_away.returncode != 0
    assert "cannot list" not in turned_away.stderr, turned_away.stderr
    assert re.search(r"Unauthorized|provide credentials", turned_away.stderr), turned_away.stderr
    sts_after = kc.get(StatefulSet, "kmc-team", namespace=ns)
    assert sts_after.metadata.generation == sts_before.metadata.generation
    pod_after = kc.get(Pod, "kmc-team-0", namespace=ns)
    assert pod_after.metadata.uid == pod_before.metadata.uid
    restarts = [c.restartCount for c in pod_after.status.containerStatuses or []]
    assert restarts == [c.restartCount for c in pod_before.status.containerStatuses or []]
    # The group binding named the old prefix: alice reads no more, until it is rebound.
    assert alice.run("get", "namespaces").returncode != 0
    # The operator asked the API server which file it runs: the one written.
    _wait_condition(ms, kc, operator, "team", ns, "AuthenticationLoaded", RELOAD_WITHIN)

    # A mistake admission cannot see (`claim` is not a declared name; `claims` is): the API
    # server refuses the file and keeps the one it has, and the Cluster says so, in its words.
    broken = _expressions(idp)
    broken["jwt"][0]["claimMappings"]["uid"] = {"expression": "claim.sub"}
    kc.patch(
        Cluster,
        "team",
        {"spec": {"kubernetes": {"authentication": broken}}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )
    edited = time.monotonic()
    kube.wait_until(
        "AuthenticationLoaded=False on the Cluster",
        lambda: _condition(kc, "team", ns, "AuthenticationLoaded").get("status") == "False",
        RELOAD_WITHIN,
        interval=2,
    )
    refused = _condition(kc, "team", ns, "AuthenticationLoaded")
    print(f"refused file reported: {time.monotonic() - edited:.1f}s: {refused['message']}")
    assert refused["reason"] == "Rejected"
    logged = _kubectl(ms, ms.cfg.kubeconfig, "logs", "-n", ns, "kmc-team-0",
                      "-c", "kube-apiserver", "--tail=30")  # fmt: skip
    for words in ("claimMappings.uid.expression", "undeclared reference to 'claim'"):
        assert words in refused["message"], f"{refused['message']}\nlog:\n{logged.stdout}"
    assert _whoami(alice.run("auth", "whoami", "-o", "json"))["username"] == (
        "corp:alice@example.com"
    ), "the API server should still run the file it had"
    warned = _kubectl(ms, ms.cfg.kubeconfig, "get", "events", "-n", ns,
                      "--field-selector=reason=AuthenticationRejected", "-o", "name")  # fmt: skip
    assert warned.stdout.strip(), "no AuthenticationRejected event"

    # At its next start the API server reads the refused file and exits: the Cluster says so.
    kc.delete(Pod, "kmc-team-0", namespace=ns)
    kube.wait_until(
        "AuthenticationLoaded saying the API server does not start",
        lambda: "does not start" in _condition(kc, "team", ns, "AuthenticationLoaded")["message"],
        RELOAD_WITHIN,
        interval=2,
    )
    down = _condition(kc, "team", ns, "AuthenticationLoaded")
    assert down["status"] == "False" and "undeclared reference to 'claim'" in down["message"]
