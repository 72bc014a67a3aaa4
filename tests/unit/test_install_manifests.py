"""deploy/install.yaml and the Helm chart: generated, in step with each other, least-privilege.

The chart is checked with the real helm (built from its Go module by `mothership tools
install`): `helm lint`, and `helm template` compared object by object with the Python
rendering, for the default values (= deploy/install.yaml) and for other value sets.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mothership.install import chart, generate, manifests
from mothership.install.manifests import Settings
from mothership.testenv import gobuild, paths
from mothership.webhooks.registration import CONFIG_NAME, CRD_NAMES

CHART = generate.CHART_DIR
Key = tuple[str, str, str]


@pytest.fixture(scope="module")
def helm() -> Path:
    gobuild.install(lambda _: None, only={"helm"})  # seconds when built; a cold build ~2 min
    return paths.tool("helm")


def by_key(docs: list[Any]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for doc in docs:
        if not doc:
            continue
        key = (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
        assert key not in out, f"{key} rendered twice"
        out[key] = doc
    return out


def helm_template(
    helm: Path,
    *args: str,
    values: dict[str, Any] | None = None,
    tmp: Path | None = None,
    namespace: str = manifests.NAMESPACE,
) -> dict[Key, Any]:
    argv = [str(helm), "template", "mothership", str(CHART), "--namespace", namespace, *args]
    if values is not None:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        argv += ["--values", str(path)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return by_key(list(yaml.safe_load_all(out.stdout)))


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += differences(a.get(key), b.get(key), f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: chart {a!r} != python {b!r}"]


def assert_same(rendered: dict[Key, Any], expected: dict[Key, Any]) -> None:
    assert sorted(rendered) == sorted(expected)
    for key, obj in expected.items():
        assert rendered[key] == obj, f"{key}: {differences(rendered[key], obj)}"


def test_checked_in_files_are_what_the_code_generates() -> None:
    stale = {p: t for p, t in generate.expected().items() if not p.exists() or p.read_text() != t}
    assert not stale, f"run: python -m mothership.install.generate ({sorted(map(str, stale))})"
    assert generate.main(["--check"]) == 0


def test_install_yaml_is_the_default_objects() -> None:
    docs = list(yaml.safe_load_all(generate.INSTALL_YAML.read_text()))
    assert docs == manifests.objects()


def test_helm_lint_passes(helm: Path) -> None:
    out = subprocess.run([str(helm), "lint", "--strict", str(CHART)], capture_output=True,
                         text=True, check=False)  # fmt: skip
    # --strict turns warnings into failures; the one INFO (no icon) is not a warning.
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


def test_helm_template_defaults_equal_install_yaml(helm: Path) -> None:
    expected = by_key(list(yaml.safe_load_all(generate.INSTALL_YAML.read_text())))
    # The one difference by design: Helm is given its namespace (--create-namespace).
    del expected[("Namespace", "", manifests.NAMESPACE)]
    assert_same(helm_template(helm), expected)


VALUE_SETS: list[dict[str, Any]] = [
    {
        "image": {"repository": "registry.example.com/ms", "tag": "9.9.9", "pullPolicy": "Always"},
        "replicas": 3,
        "logLevel": "debug",
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
    },
    {"watchNamespaces": ["tenants-a", "tenants-b"]},
    {"webhook": {"certManager": {"enabled": True}}},
    {
        "webhook": {
            "certManager": {
                "enabled": True,
                "issuerRef": {"kind": "ClusterIssuer", "name": "corp-ca"},
            }
        },
        "watchNamespaces": ["only"],
    },
    {
        "operator": {
            "kubernetesImageTemplate": "localhost/mothership/control-plane:{version}",
            "defaultEtcdImage": "localhost/mothership/control-plane:v1.35.4",
        }
    },
    {
        "operator": {
            "nodeDownloadURL": "http://10.200.0.1:8880",
            "nodeRegistryMirror": "http://10.200.0.1:5000",
        }
    },
]
VALUE_SET_IDS = ["image", "watch", "cert-manager", "issuer", "tenant-images", "node-mirrors"]


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_SET_IDS)
def test_helm_template_equals_python_rendering(helm: Path, values: dict[str, Any],
                                               tmp_path: Path) -> None:  # fmt: skip
    rendered = helm_template(helm, values=values, tmp=tmp_path, namespace="ops")
    settings = chart.settings_for(values, namespace="ops")
    expected = by_key(manifests.objects(settings))
    del expected[("Namespace", "", "ops")]
    assert_same(rendered, expected)


def test_values_schema_refuses_bad_values_by_path(helm: Path) -> None:
    for flag, path in (
        ("logLevel=loud", "/logLevel"),
        ("replicas=0", "/replicas"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("operator.kubernetesImageTemplate=reg/cp:v1", "/operator/kubernetesImageTemplate"),
        ("operator.nodeDownloadURL=ftp://mirror", "/operator/nodeDownloadURL"),
        ("operator.nodeRegistryMirror=http://r:5000/v2", "/operator/nodeRegistryMirror"),
        ("replica=2", "replica"),  # a typo is refused, not silently ignored
    ):
        out = subprocess.run([str(helm), "template", "m", str(CHART), "--set", flag],
                             capture_output=True, text=True, check=False)  # fmt: skip
        assert out.returncode != 0, flag
        assert path in out.stderr, out.stderr


def test_values_file_documents_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values == chart.default_values()
    text = (CHART / "values.yaml").read_text()
    readme = (CHART / "README.md").read_text()
    for value in chart.VALUES:
        assert f"# -- {value.description}" in text
        assert f"`{value.path}`" in readme
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert Settings.from_values(values) == Settings()
    assert chart.settings_for({}, manifests.NAMESPACE) == Settings()


# -- what the manifest grants and runs -----------------------------------------------------


def objects_of(kind: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    return [o for o in manifests.objects(settings) if o["kind"] == kind]


def test_rbac_has_no_wildcards_and_no_cluster_wide_secret_updates() -> None:
    for kind in ("ClusterRole", "Role"):
        for role in objects_of(kind):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], (role["metadata"]["name"], rule)
                assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
                assert "impersonate" not in rule["verbs"]
    roles = {r["metadata"]["name"]: r for r in objects_of("ClusterRole")}
    for rule in roles["mothership-operator-tenants"]["rules"]:
        if "secrets" in rule["resources"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch", "create", "patch"}
    # Webhook configurations and CRDs may only be patched by name.
    for rule in roles["mothership-operator"]["rules"]:
        if "patch" in rule["verbs"] and rule["apiGroups"] != ["mothership.io"]:
            assert set(rule["resourceNames"]) <= {CONFIG_NAME, *CRD_NAMES}


def test_datastores_are_granted_cluster_wide_whatever_namespaces_are_watched() -> None:
    """A DataStore is cluster-scoped: a RoleBinding of the tenants role could not grant it."""
    for settings in (Settings(), Settings(watch_namespaces=("a",))):
        roles = {r["metadata"]["name"]: r for r in objects_of("ClusterRole", settings)}
        rules = [
            r for r in roles["mothership-operator"]["rules"] if "mothership.io" in r["apiGroups"]
        ]
        assert [(r["resources"], r["verbs"]) for r in rules] == [
            (["datastores"], ["get", "list", "watch", "patch", "update"]),
            (["datastores/status"], ["get", "patch", "update"]),
            (["datastores/finalizers"], ["update"]),
        ]
        assert all("resourceNames" not in r for r in rules)
        tenants = roles["mothership-operator-tenants"]["rules"]
        assert not [r for r in tenants if "mothership.io" in r["apiGroups"]]
    # Admin Secrets beside the operator are readable even when its namespace is not watched.
    (own,) = objects_of("Role", Settings(watch_namespaces=("a",)))
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]} in own["rules"]


def test_watched_namespaces_bind_the_tenant_role_only_there() -> None:
    settings = Settings(watch_namespaces=("a", "b"))
    bindings = objects_of("RoleBinding", settings)
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} >= {
        ("a", "mothership-operator-tenants"),
        ("b", "mothership-operator-tenants"),
    }
    names = [b["metadata"]["name"] for b in objects_of("ClusterRoleBinding", settings)]
    assert names == ["mothership-operator"]
    args = objects_of("Deployment", settings)[0]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert args[-2:] == ["--namespace=a", "--namespace=b"]


def test_deployment_runs_locked_down_with_probes_and_leader_election() -> None:
    deployment = objects_of("Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == f"{manifests.IMAGE_REPOSITORY}:{manifests.version()}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["resources"] == manifests.DEFAULT_RESOURCES
    args = container["args"]
    assert args[:2] == ["operator", "run"] and "--leader-elect" in args
    assert "--webhook-service=mothership-system/mothership-webhook" in args
    assert "--webhook-registration=ca-bundle" in args and "--webhook-certs=secret" in args


def test_tenant_image_settings_reach_the_operator_as_its_env_only_when_set() -> None:
    from mothership.controllers.cluster import (
        K0S_IMAGE_REPOSITORY_ENV,
        MONITORING_PROMETHEUS_IMAGE_ENV,
        MONITORING_PROXY_IMAGE_ENV,
    )
    from mothership.controllers.kubernetes_distribution import IMAGE_TEMPLATE_ENV
    from mothership.testenv import localoperator

    assert manifests.TENANT_IMAGE_ENV["kubernetesImageTemplate"] == IMAGE_TEMPLATE_ENV
    assert manifests.TENANT_IMAGE_ENV["k0sImageRepository"] == K0S_IMAGE_REPOSITORY_ENV
    assert manifests.TENANT_IMAGE_ENV["monitoringPrometheusImage"] == (
        MONITORING_PROMETHEUS_IMAGE_ENV
    )
    assert manifests.TENANT_IMAGE_ENV["monitoringProxyImage"] == MONITORING_PROXY_IMAGE_ENV

    def env(settings: Settings | None = None) -> dict[str, Any]:
        deployment = objects_of("Deployment", settings)[0]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value") for e in container["env"]}

    # Unset: no variable at all, so the operator keeps the upstream images.
    assert set(env()) == {"POD_NAME", "POD_NAMESPACE"}
    local = Settings(
        kubernetes_image_template=localoperator.KUBERNETES_IMAGE_TEMPLATE,
        default_etcd_image=localoperator.DEFAULT_ETCD_IMAGE,
        k0s_image_repository=localoperator.K0S_IMAGE_REPOSITORY,
        monitoring_prometheus_image="localhost/mothership/prometheus:v3.16.0",
        monitoring_proxy_image="localhost/mothership/nginx:1.22.1",
    )
    assert env(local) == {
        "POD_NAME": None,
        "POD_NAMESPACE": None,
        IMAGE_TEMPLATE_ENV: localoperator.KUBERNETES_IMAGE_TEMPLATE,
        "MOTHERSHIP_DEFAULT_ETCD_IMAGE": localoperator.DEFAULT_ETCD_IMAGE,
        K0S_IMAGE_REPOSITORY_ENV: "localhost/mothership/k0s",
        MONITORING_PROMETHEUS_IMAGE_ENV: "localhost/mothership/prometheus:v3.16.0",
        MONITORING_PROXY_IMAGE_ENV: "localhost/mothership/nginx:1.22.1",
    }
    values = {"operator": {"monitoringProxyImage": "reg.example/nginx:1.27"}}
    assert chart.settings_for(values, manifests.NAMESPACE) == Settings(
        monitoring_proxy_image="reg.example/nginx:1.27"
    )
    with pytest.raises(ValueError, match="needs \\{version\\}"):
        manifests.objects(Settings(kubernetes_image_template="reg/control-plane:v1.35.4"))


def test_node_mirror_settings_reach_the_operator_as_its_env_only_when_set() -> None:
    from mothership.controllers.join_token import NODE_DOWNLOAD_URL_ENV, NODE_REGISTRY_MIRROR_ENV

    assert manifests.NODE_MIRROR_ENV == {
        "nodeDownloadURL": NODE_DOWNLOAD_URL_ENV,
        "nodeRegistryMirror": NODE_REGISTRY_MIRROR_ENV,
    }

    def env(settings: Settings) -> dict[str, Any]:
        deployment = objects_of("Deployment", settings)[0]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value") for e in container["env"]}

    assert set(env(Settings())) == {"POD_NAME", "POD_NAMESPACE"}
    download = "http://10.200.0.1:8880"
    assert env(Settings(node_download_url=download)) == {
        "POD_NAME": None,
        "POD_NAMESPACE": None,
        NODE_DOWNLOAD_URL_ENV: download,
    }
    both = Settings(node_download_url=download, node_registry_mirror="https://r.example:5000")
    assert env(both) == {
        "POD_NAME": None,
        "POD_NAMESPACE": None,
        NODE_DOWNLOAD_URL_ENV: download,
        NODE_REGISTRY_MIRROR_ENV: "https://r.example:5000",
    }
    values = {"operator": {"nodeDownloadURL": download, "nodeRegistryMirror": ""}}
    assert chart.settings_for(values, manifests.NAMESPACE) == Settings(node_download_url=download)


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("node_download_url", "ftp://mirror"),
        ("node_download_url", "10.200.0.1:8880"),
        ("node_download_url", "http://a b"),
        ("node_registry_mirror", "10.200.0.1:5000"),
        ("node_registry_mirror", "http://r:5000/v2"),
    ],
)
def test_bad_node_mirrors_are_refused_naming_the_setting(setting: str, url: str) -> None:
    name = setting.replace("_", " ").replace("url", "URL")  # e.g. node download URL
    with pytest.raises(ValueError, match=r"e\.g\. http://10\.200\.0\.1:") as caught:
        manifests.objects(Settings(**{setting: url}))
    assert f"{name} {url!r}" in str(caught.value)


def test_local_mothership_with_a_real_node_defaults_to_its_mirrors(tmp_path: Path) -> None:
    from mothership.cli import install
    from mothership.testenv import artifacts, registry
    from mothership.testenv.config import MothershipConfig
    from mothership.testenv.local import LocalMothership

    def local(nodes: Any) -> LocalMothership:
        return LocalMothership(MothershipConfig(name="t", state_dir=tmp_path, nodes=nodes))

    real, kwok = local("real"), local("kwok")
    mirrors = install._local_node_mirrors(Settings(), real, None, None)
    assert (mirrors.node_download_url, mirrors.node_registry_mirror) == (
        artifacts.url(real.cfg),
        registry.url(real.cfg),
    )
    assert install._local_node_mirrors(Settings(), kwok, None, None) == Settings()
    # Flags given win, '' too (it stands for upstream / no mirror).
    given = Settings(node_download_url="http://m.example")
    chosen = install._local_node_mirrors(given, real, "http://m.example", "")
    assert (chosen.node_download_url, chosen.node_registry_mirror) == ("http://m.example", "")


def test_webhook_registration_leaves_ca_bundle_to_the_operator() -> None:
    """The manifest must not own caBundle, or re-applying it would erase the operator's."""
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (config,) = objects_of(kind)
        for hook in config["webhooks"]:
            assert "caBundle" not in hook["clientConfig"]
            assert hook["clientConfig"]["service"]["name"] == manifests.WEBHOOK_SERVICE
    for crd in objects_of("CustomResourceDefinition"):
        conversion = crd["spec"]["conversion"]
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        if len(crd["spec"]["versions"]) == 1:
            assert conversion == {"strategy": "None"}
            continue
        assert conversion["strategy"] == "Webhook"
        client_config = conversion["webhook"]["clientConfig"]
        assert "caBundle" not in client_config
        assert client_config["service"]["path"] == "/convert"
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_cert_manager_mode_injects_instead() -> None:
    settings = Settings(cert_manager=True)
    (config,) = objects_of("ValidatingWebhookConfiguration", settings)
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "mothership-system/mothership-webhook"
    }
    (cert,) = objects_of("Certificate", settings)
    assert cert["spec"]["issuerRef"] == {"kind": "Issuer", "name": "mothership-selfsigned"}
    args = objects_of("Deployment", settings)[0]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert "--webhook-registration=none" in args and "--webhook-certs=provided" in args


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match="log level 'loud'"):
        manifests.objects(Settings(log_level="loud"))
    with pytest.raises(ValueError, match="replicas 0"):
        manifests.objects(Settings(replicas=0))


def test_helm_pin_lives_apart_from_the_mothership_binaries() -> None:
    from mothership.testenv import pins

    family = next(f for f in pins.tool_families() if f.name == "helm")
    assert family.version == pins.HELM_VERSION
    assert pins.tool_version_set(family) != pins.version_set()
    assert family not in pins.families()


def test_readme_lists_every_helm_value() -> None:
    readme = (generate.REPO_ROOT / "README.md").read_text()
    assert chart.values_table() in readme, "README's Helm values table is not the generated one"


def test_cli_dry_run_prints_the_manifest_and_refuses_bad_flags() -> None:
    from typer.testing import CliRunner

    from mothership.cli.main import app

    runner = CliRunner()
    out = runner.invoke(app, ["install", "--dry-run", "-o", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["items"] == manifests.objects()
    out = runner.invoke(app, ["install", "--dry-run", "--watch-namespace", "a", "--replicas", "3"])
    assert out.exit_code == 0, out.output
    items = yaml.safe_load(out.stdout)["items"]
    assert items == manifests.objects(Settings(watch_namespaces=("a",), replicas=3))
    argv = ["install", "--dry-run", "--kubernetes-image-template", "r/cp:{version}",
            "--default-etcd-image", "r/etcd:1", "--k0s-image-repository", "r:5000/k0s"]  # fmt: skip
    out = runner.invoke(app, argv)
    assert out.exit_code == 0, out.output
    items = yaml.safe_load(out.stdout)["items"]
    tenant_images = Settings(
        kubernetes_image_template="r/cp:{version}",
        default_etcd_image="r/etcd:1",
        k0s_image_repository="r:5000/k0s",
    )
    assert items == manifests.objects(tenant_images)
    argv = ["install", "--dry-run", "--node-download-url", "http://m:8880",
            "--node-registry-mirror", "http://m:5000"]  # fmt: skip
    out = runner.invoke(app, argv)
    assert out.exit_code == 0, out.output
    items = yaml.safe_load(out.stdout)["items"]
    mirrors = Settings(node_download_url="http://m:8880", node_registry_mirror="http://m:5000")
    assert items == manifests.objects(mirrors)
    for argv, message in (
        (["install", "--dry-run", "--log-level", "loud"], "log level 'loud'"),
        (["install", "--dry-run", "-n", "kube-system"], "system namespace"),
        (["install", "--dry-run", "--image", "noTag"], "repository:tag"),
        (["install", "--dry-run", "--kubernetes-image-template", "r/cp"], "needs {version}"),
        (["install", "--dry-run", "--k0s-image-repository", "r/k0s:v1"], "without tag"),
        (["install", "--dry-run", "--node-download-url", "m:8880"], "node download URL"),
        (["install", "--dry-run", "--node-registry-mirror", "m:5000"], "node registry mirror"),
    ):
        out = runner.invoke(app, argv)
        assert out.exit_code == 2, (argv, out.output)
        assert message in out.output
