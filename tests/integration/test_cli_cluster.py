"""`mothership cluster ...` and `mothership token create`, run as a user runs them.

Every command is a real subprocess against a real local mothership started by
`mothership dev up` (operator included), found the way a new user's shell finds it: no
KUBECONFIG, no ~/.kube/config, just the running local mothership `default` (the state
root is a temporary directory, so the user's own mothership is never touched).

Most tests use kwok nodes: the k0s control-plane pods become Ready there, so everything up
to the tenant API can be checked in seconds; a tenant API that answers needs the real
node (the last test, marked realnode: its `dev up` runs the node beside any other local
mothership's, in a machine when the host's network is taken).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from lightkube.core.exceptions import ApiError
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.core_v1 import Pod

from mothership.cli.connection import ORIGIN_EXTENSION
from mothership.render.join_token import decode_join_token
from mothership.testenv import kube, paths, pins
from mothership.webhooks.registration import CONFIG_NAME
from tests.leftovers import processes_mentioning

EXIT_USAGE, EXIT_PREREQUISITE, EXIT_NOT_FOUND, EXIT_TIMEOUT = 2, 3, 4, 5


@dataclass
class Env:
    """A user's environment: HOME and state root of their own, the shared build cache."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state" / "default"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    def vars(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "MOTHERSHIP_DEBUG")}
        env.update(
            HOME=str(self.root / "home"),
            MOTHERSHIP_STATE_DIR=str(self.root / "state"),
            MOTHERSHIP_CACHE_DIR=str(paths.cache_root()),
        )
        env.update(extra)
        return env

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 600, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mothership", *args],
            capture_output=True,
            text=True,
            input=stdin,
            env=self.vars(**extra),
            timeout=timeout,
        )

    def ok(self, *args: str, **kw: str) -> str:
        out = self.run(*args, **kw)  # type: ignore[arg-type]
        assert out.returncode == 0, f"{args}: rc={out.returncode}\n{out.stdout}\n{out.stderr}"
        return out.stdout


def _start(root: Path, *up_args: str) -> Env:
    env = Env(root)
    (root / "home").mkdir(parents=True, exist_ok=True)
    env.ok("dev", "up", *up_args)
    return env


def _stop(env: Env, purge: bool = False) -> None:
    down = env.run("dev", "down", *(["--purge"] if purge else []))
    assert down.returncode == 0, down.stderr
    assert processes_mentioning(env.state) == []


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    env = _start(tmp_path_factory.mktemp("cli"), "--nodes", "kwok", "--kwok-nodes", "1")
    try:
        yield env
    finally:
        _stop(env)


def _name() -> str:
    return f"c{uuid.uuid4().hex[:6]}"


def _cluster(env: Env, name: str, *args: str) -> dict:
    return json.loads(env.ok("cluster", "get", name, "-o", "json", *args))


def _wait_for(what: str, check: object, timeout: float = 90) -> None:
    assert callable(check)
    kube.wait_until(what, check, timeout)


# --- the local mothership runs the operator ------------------------------------------------


@pytest.mark.kwok
def test_dev_up_runs_the_operator_with_its_webhooks(user: Env) -> None:
    rows = {r["name"]: r for r in json.loads(user.ok("dev", "status", "-o", "json"))}
    assert rows["operator"]["healthy"], rows
    assert (user.state / "logs" / "operator.log").is_file()
    kc = kube.client(user.kubeconfig)
    hooks = kc.get(ValidatingWebhookConfiguration, CONFIG_NAME)
    url = hooks.webhooks[0].clientConfig.url
    assert url and url.startswith("https://127.0.0.1:")


# --- create, list, get ------------------------------------------------------------------------


@pytest.mark.kwok
def test_create_from_flags_then_list_in_every_format(user: Env) -> None:
    name = _name()
    out = user.run("cluster", "create", name, "--distribution", "k0s", "--replicas", "1")
    assert out.returncode == 0, out.stderr
    assert f"cluster.k0smotron.io/{name} created" in out.stdout
    assert "using the local mothership `default`" in out.stderr
    obj = _cluster(user, name)
    assert obj["spec"]["distribution"] == "k0s"
    assert obj["metadata"]["namespace"] == "default"
    assert "managedFields" not in obj["metadata"]

    # Without --distribution the CLI asks for the kubernetes distribution.
    plain = _name()
    user.ok("cluster", "create", plain)
    assert _cluster(user, plain)["spec"]["distribution"] == "kubernetes"

    def ready() -> bool:
        return (_cluster(user, name).get("status") or {}).get("readyReplicas") == 1

    _wait_for(f"{name} has its kwok replica", ready)

    listed = json.loads(user.ok("cluster", "list", "-o", "json"))
    assert listed["kind"] == "List"
    assert {name, plain} <= {i["metadata"]["name"] for i in listed["items"]}
    as_yaml = yaml.safe_load(user.ok("cluster", "list", "-o", "yaml"))
    assert {i["metadata"]["name"] for i in as_yaml["items"]} == {
        i["metadata"]["name"] for i in listed["items"]
    }
    table = user.ok("cluster", "list")
    header = table.splitlines()[0].split()
    assert header == ["NAME", "DISTRIBUTION", "VERSION", "READY", "ENDPOINT", "AVAILABLE", "AGE"]
    row = next(line.split() for line in table.splitlines() if line.split()[0] == name)
    assert row[1:4] == ["k0s", "v1.35.4-k0s.0", "1/1"]
    assert row[4].startswith("https://") and row[4].endswith(":30443")
    assert row[5] == "False"  # kwok pods cannot serve a tenant API
    everywhere = user.ok("cluster", "list", "-A").splitlines()
    assert everywhere[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == ["default", name] for line in everywhere)


@pytest.mark.kwok
def test_create_from_a_manifest_file_and_from_stdin(user: Env, tmp_path: Path) -> None:
    ns, old, new = f"t-{uuid.uuid4().hex[:6]}", _name(), _name()
    manifest = tmp_path / "cluster.yaml"
    manifest.write_text(
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n"
        "apiVersion: k0smotron.io/v1beta1\nkind: Cluster\n"
        f"metadata: {{name: {old}, namespace: {ns}}}\n"
        "spec: {replicas: 1, version: v1.35.4-k0s.0}\n"
    )
    out = user.ok("cluster", "create", "-f", str(manifest))
    assert f"namespace/{ns} created" in out
    assert f"cluster.k0smotron.io/{old} created in {ns}" in out
    stored = _cluster(user, old, "-n", ns)
    assert stored["apiVersion"] == "k0smotron.io/v1beta2"  # converted by the webhook
    assert stored["spec"]["version"] == "v1.35.4-k0s.0"

    piped = f"apiVersion: k0smotron.io/v1beta2\nkind: Cluster\nmetadata: {{name: {new}}}\n"
    piped += "spec: {replicas: 1, distribution: k0s}\n"
    out = user.run("cluster", "create", "-f", "-", "-n", ns, "-o", "json", stdin=piped)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["metadata"]["namespace"] == ns

    again = user.ok("cluster", "create", "-f", str(manifest))
    assert f"cluster.k0smotron.io/{old} configured in {ns}" in again


@pytest.mark.kwok
def test_the_context_namespace_is_the_default(user: Env, tmp_path: Path) -> None:
    ns, flagged, piped = f"t-{uuid.uuid4().hex[:6]}", _name(), _name()
    user.ok(
        "cluster",
        "create",
        "-f",
        "-",
        stdin=f"{{apiVersion: v1, kind: Namespace, metadata: {{name: {ns}}}}}",
    )
    config = yaml.safe_load(user.kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = ns
    kubeconfig = tmp_path / "in-namespace"
    kubeconfig.write_text(yaml.safe_dump(config))
    where = {"KUBECONFIG": str(kubeconfig)}
    user.ok("cluster", "create", flagged, "--distribution", "k0s", **where)
    manifest = f"{{apiVersion: k0smotron.io/v1beta2, kind: Cluster, metadata: {{name: {piped}}}}}"
    user.ok("cluster", "create", "-f", "-", stdin=manifest, **where)  # type: ignore[arg-type]
    assert _cluster(user, flagged, "-n", ns)["metadata"]["namespace"] == ns
    assert _cluster(user, piped, "-n", ns)["metadata"]["namespace"] == ns
    listed = json.loads(user.ok("cluster", "list", "-o", "json", **where))
    assert {i["metadata"]["name"] for i in listed["items"]} == {flagged, piped}
    assert user.run("cluster", "get", flagged).returncode == EXIT_NOT_FOUND  # not in default


@pytest.mark.kwok
def test_get_shows_spec_conditions_and_events(user: Env) -> None:
    name = _name()
    user.ok("cluster", "create", name, "--distribution", "k0s", "--service-type", "NodePort")

    def reported() -> bool:
        conds = (_cluster(user, name).get("status") or {}).get("conditions") or []
        return any(c["type"] == "ControlPlaneScaling" and c["status"] == "False" for c in conds)

    _wait_for(f"{name} conditions", reported)
    text = user.ok("cluster", "get", name)
    assert "Distribution  k0s" in text
    assert "NodePort (api 30443, konnectivity 30132)" in text
    conditions = text.split("Conditions", 1)[1].split("Events", 1)[0]
    rows = {line.split()[0]: line.split()[1:3] for line in conditions.splitlines()[2:] if line}
    assert rows["CertificatesAvailable"] == ["True", "CertificatesReady"]
    assert rows["ControlPlaneScaling"] == ["False", "ReplicasReady"]
    assert rows["Available"][0] == "False"
    assert "SecretsCreated" in text.split("Events", 1)[1]


@pytest.mark.kwok
def test_wait_that_cannot_end_times_out_with_the_phase(user: Env) -> None:
    name = _name()
    out = user.run("cluster", "create", name, "--distribution", "k0s", "--wait", "--timeout", "15")
    assert out.returncode == EXIT_TIMEOUT, out.stderr
    assert f"cluster {name}: not done after 15s; last phase:" in out.stderr
    # The phases seen on the way are printed once each (stderr is not a terminal here).
    assert "waiting for the operator to pick it up" in out.stderr or "certificates" in out.stderr
    assert f"mothership cluster get {name}" in out.stderr


# --- kubeconfig -------------------------------------------------------------------------------


@pytest.mark.kwok
def test_kubeconfig_print_file_and_merge(user: Env, tmp_path: Path) -> None:
    name = _name()
    user.ok("cluster", "create", name, "--distribution", "k0s")
    printed = yaml.safe_load(user.ok("cluster", "kubeconfig", name, "--wait", "--timeout", "60"))
    server = printed["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://") and server.endswith(":30443")

    saved = tmp_path / "tenant.kubeconfig"
    user.ok("cluster", "kubeconfig", name, "--output-file", str(saved))
    assert yaml.safe_load(saved.read_text()) == printed
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    mine = tmp_path / "config"
    existing = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "work", "cluster": {"server": "https://work.example:6443"}}],
        "users": [{"name": "me", "user": {"token": "secret"}}],
        "contexts": [{"name": "work", "context": {"cluster": "work", "user": "me"}}],
        "current-context": "work",
    }
    mine.write_text(yaml.safe_dump(existing))
    # KUBECONFIG is the user's own file (another cluster); the mothership is named explicitly.
    out = user.run(
        "cluster", "kubeconfig", name, "--merge", "--kubeconfig", str(user.kubeconfig),
        KUBECONFIG=str(mine),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    ctx = f"mothership-default-{name}"
    assert f"merged context '{ctx}' into {mine}" in out.stdout
    merged = yaml.safe_load(mine.read_text())
    assert merged["current-context"] == ctx
    for section in ("clusters", "users", "contexts"):
        assert merged[section][0] == existing[section][0], section  # untouched
    tenant_ctx = next(c for c in merged["contexts"] if c["name"] == ctx)["context"]
    origin = tenant_ctx["extensions"][0]
    assert origin["name"] == ORIGIN_EXTENSION
    assert origin["extension"]["kubeconfig"] == str(user.kubeconfig.resolve())
    assert next(c for c in merged["clusters"] if c["name"] == ctx)["cluster"]["server"] == server
    assert yaml.safe_load((tmp_path / "config.mothership.bak").read_text()) == existing

    # kubectl now talks to the tenant, the mothership CLI still to the mothership.
    listed = user.run("cluster", "list", "-o", "json", KUBECONFIG=str(mine))
    assert listed.returncode == 0, listed.stderr
    assert name in {i["metadata"]["name"] for i in json.loads(listed.stdout)["items"]}
    assert f"kubectl's context '{ctx}' is a tenant" in listed.stderr

    # After `eval "$(mothership dev env)"` the merge goes into the local mothership's own
    # kubeconfig: allowed (kubectl reads that file), with a note, and nothing of the
    # mothership breaks: the operator has its own copy, the CLI follows the origin record.
    try:
        out = user.run("cluster", "kubeconfig", name, "--merge", KUBECONFIG=str(user.kubeconfig))
        assert out.returncode == 0, out.stderr
        assert "`mothership dev up` rewrites it" in out.stderr
        assert yaml.safe_load(user.kubeconfig.read_text())["current-context"] == ctx
        for extra in ({"KUBECONFIG": str(user.kubeconfig)}, {}):
            listed = user.run("cluster", "list", "-o", "json", **extra)
            assert listed.returncode == 0, listed.stderr
            assert name in {i["metadata"]["name"] for i in json.loads(listed.stdout)["items"]}
        rows = {r["name"]: r for r in json.loads(user.ok("dev", "status", "-o", "json"))}
        assert rows["operator"]["healthy"]
    finally:
        backup = user.kubeconfig.with_name("kubeconfig.mothership.bak")
        if backup.exists():
            user.kubeconfig.write_bytes(backup.read_bytes())


# --- tokens -----------------------------------------------------------------------------------


@pytest.mark.kwok
def test_token_waits_for_a_serving_tenant_and_says_why(user: Env) -> None:
    name = _name()
    user.ok("cluster", "create", name, "--distribution", "k0s")
    out = user.run("token", "create", name, "--expiry", "1h", "--name", f"{name}-tok",
                   "--timeout", "20")  # fmt: skip
    assert out.returncode == EXIT_TIMEOUT, out.stderr
    assert f"token {name}-tok: not done after 20s" in out.stderr
    assert f"kubectl delete jointokenrequest {name}-tok" in out.stderr
    # The request is in the API as the operator sees it.
    out = subprocess.run(
        [str(paths.bin_dir() / "kubectl"), "get", "jtr", f"{name}-tok", "-o", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(user.kubeconfig)},
        check=True,
    )
    request = json.loads(out.stdout)
    assert request["spec"] == {"clusterName": name, "expiry": "1h", "role": "worker"}
    taken = user.run("token", "create", name, "--name", f"{name}-tok", "--timeout", "1")
    assert taken.returncode == EXIT_USAGE
    assert "exists already" in taken.stderr


# --- delete -----------------------------------------------------------------------------------


@pytest.mark.kwok
def test_delete_waits_until_the_cluster_and_its_pods_are_gone(user: Env) -> None:
    name = _name()
    user.ok("cluster", "create", name, "--distribution", "k0s")

    def ready() -> bool:
        return (_cluster(user, name).get("status") or {}).get("readyReplicas") == 1

    _wait_for(f"{name} ready", ready)
    out = user.run("cluster", "delete", name, "--wait", "--timeout", "120")
    assert out.returncode == 0, out.stderr
    assert f"cluster {name} is gone" in out.stdout
    assert user.run("cluster", "get", name).returncode == EXIT_NOT_FOUND
    kc = kube.client(user.kubeconfig)
    assert list(kc.list(Pod, namespace="default", labels={"cluster": name})) == []
    again = user.run("cluster", "delete", name)
    assert again.returncode == EXIT_NOT_FOUND
    assert f"Cluster {name!r} not found" in again.stderr
    assert user.run("cluster", "delete", name, "--ignore-not-found").returncode == 0


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.kwok
def test_bad_input_names_the_field_and_exits_2(user: Env) -> None:
    out = user.run("cluster", "create", "neg", "--replicas", "-1")
    assert out.returncode == EXIT_USAGE
    assert "spec.replicas (--replicas): Input should be greater than or equal to 0" in out.stderr
    assert "Traceback" not in out.stderr
    out = user.run("cluster", "create", "two", "--replicas", "2", "--storage", "kine")
    assert out.returncode == EXIT_USAGE
    assert "spec.replicas (--replicas): 2 replicas need a data store they share" in out.stderr
    out = user.run("cluster", "create", "svc", "--service-type", "nodeport")
    assert out.returncode == EXIT_USAGE
    assert "--service-type" in out.stderr
    out = user.run("cluster", "create", "Bad_Name")
    assert out.returncode == EXIT_USAGE
    assert "not valid" in out.stderr
    out = user.run("token", "create", "x", "--expiry", "soon")
    assert out.returncode == EXIT_USAGE
    assert "spec.expiry (--expiry)" in out.stderr
    # Nothing was created by any of these.
    names = {
        i["metadata"]["name"] for i in json.loads(user.ok("cluster", "list", "-o", "json"))["items"]
    }
    assert not names & {"neg", "two", "svc"}


@pytest.mark.kwok
def test_missing_objects_and_clusters_exit_4_and_3(user: Env, tmp_path: Path) -> None:
    for args in (
        ("cluster", "get", "nope"),
        ("cluster", "kubeconfig", "nope"),
        ("token", "create", "nope"),
        ("cluster", "get", "nope", "-n", "elsewhere"),
    ):
        out = user.run(*args)
        assert out.returncode == EXIT_NOT_FOUND, (args, out.stderr)
        assert "not found" in out.stderr
    out = user.run("cluster", "list", "--kubeconfig", str(tmp_path / "missing"))
    assert out.returncode == EXIT_USAGE
    assert "no such file" in out.stderr
    # No kubeconfig anywhere and no local mothership: say how to get one.
    empty = Env(tmp_path / "nobody")
    (empty.root / "home").mkdir(parents=True)
    out = empty.run("cluster", "list")
    assert out.returncode == EXIT_PREREQUISITE
    assert "mothership dev up" in out.stderr


def test_a_cluster_without_the_crds_says_how_to_install(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    env = Env(tmp_path)
    (tmp_path / "home").mkdir()
    env.ok(
        "dev", "up", "--nodes", "none", "--no-operator", "--name", "bare", "--state-dir", str(bare)
    )
    try:
        kubeconfig = str(bare / "kubeconfig")
        for args in (
            ("cluster", "list"),
            ("cluster", "create", "demo", "--distribution", "k0s"),
            ("cluster", "get", "demo"),
            ("token", "create", "demo"),
        ):
            out = env.run(*args, "--kubeconfig", kubeconfig)
            assert out.returncode == EXIT_PREREQUISITE, (args, out.stderr)
            assert "CRDs are not installed" in out.stderr
            assert "mothership install" in out.stderr
    finally:
        assert env.run("dev", "down", "--name", "bare", "--state-dir", str(bare)).returncode == 0
        assert processes_mentioning(bare) == []


@pytest.mark.kwok
def test_without_the_operator_no_webhook_is_left_behind(user: Env) -> None:
    """Runs last in this module: it turns the fixture's operator off."""
    user.ok("dev", "up", "--nodes", "kwok", "--kwok-nodes", "1", "--no-operator")
    rows = {r["name"] for r in json.loads(user.ok("dev", "status", "-o", "json"))}
    assert "operator" not in rows
    kc = kube.client(user.kubeconfig)
    for kind in (MutatingWebhookConfiguration, ValidatingWebhookConfiguration):
        with pytest.raises(ApiError) as gone:
            kc.get(kind, CONFIG_NAME)
        assert gone.value.status.code == 404
    # Clusters can still be written (no webhook pointing at a port nobody serves).
    name = _name()
    user.ok("cluster", "create", name, "--distribution", "k0s")
    phase = user.run("cluster", "create", name, "--distribution", "k0s", "--wait", "--timeout", "3")
    assert phase.returncode == EXIT_TIMEOUT
    assert "waiting for the operator to pick it up" in phase.stderr


# --- the whole path on the real node --------------------------------------------------------


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: containerd's socket paths must stay under 104 characters."""
    path = Path(tempfile.mkdtemp(prefix="msq-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.realnode
def test_quickstart_on_the_real_node(short_tmp: Path) -> None:
    """README command 1, then `cluster create demo --wait` and `cluster kubeconfig demo`.

    Needs root and containerd; another local mothership's real node may run (this one's
    then runs in a machine, with a Service range the host routes to it).
    """
    tmp_path = short_tmp
    env = _start(tmp_path)
    try:
        out = env.run("cluster", "create", "demo", "--wait", "--timeout", "600", timeout=900)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "cluster demo is Available" in out.stdout
        obj = _cluster(env, "demo")
        assert obj["spec"]["distribution"] == "kubernetes"

        kubeconfig = tmp_path / "demo.kubeconfig"
        kubeconfig.write_text(env.ok("cluster", "kubeconfig", "demo"))
        kubectl = [str(paths.bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}"]
        namespaces = subprocess.run(
            [*kubectl, "get", "namespaces", "-o", "name"], capture_output=True, text=True
        )
        assert namespaces.returncode == 0, namespaces.stderr
        assert "namespace/kube-system" in namespaces.stdout.split()
        version = subprocess.run(
            [*kubectl, "version", "-o", "json"], capture_output=True, text=True, check=True
        )
        assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == (
            pins.KUBERNETES_VERSION
        )

        token = env.ok("token", "create", "demo", "--expiry", "1h", "--timeout", "300").strip()
        join = decode_join_token(token)
        assert join["users"][0]["user"]["token"].count(".") == 1
        token_kubeconfig = tmp_path / "join.kubeconfig"
        token_kubeconfig.write_text(yaml.safe_dump(join))
        whoami = subprocess.run(
            [str(paths.bin_dir() / "kubectl"), f"--kubeconfig={token_kubeconfig}",
             "auth", "whoami", "-o", "json"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert whoami.returncode == 0, whoami.stderr
        user = json.loads(whoami.stdout)["status"]["userInfo"]["username"]
        assert user.startswith("system:bootstrap:")
        assert base64.b64decode(token).startswith(b"\x1f\x8b")  # gzip, as k0s writes it

        out = env.run("cluster", "delete", "demo", "--wait", "--timeout", "300")
        assert out.returncode == 0, out.stderr
    finally:
        _stop(env, purge=True)
