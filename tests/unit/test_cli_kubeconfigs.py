"""Kubeconfig merging and the CLI's choice of cluster, on files only (no API)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from mothership.cli import connection, kubeconfigs
from mothership.cli.errors import InvalidInput


def _config(name: str, server: str, namespace: str | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"cluster": name, "user": name}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": f"token-{name}"}}],
        "contexts": [{"name": name, "context": ctx}],
        "current-context": name,
    }


TENANT = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "demo", "cluster": {"server": "https://10.0.0.5:30443"}}],
    "users": [{"name": "admin", "user": {"token": "tenant-admin"}}],
    "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": "admin"}}],
    "current-context": "demo",
}


def test_renamed_uses_one_name_and_carries_the_origin() -> None:
    origin = {"kubeconfig": "/k", "context": "ms"}
    out = kubeconfigs.renamed(TENANT, "mothership-default-demo", origin)
    assert [c["name"] for c in out["clusters"]] == ["mothership-default-demo"]
    assert out["users"][0]["user"] == {"token": "tenant-admin"}
    ctx = out["contexts"][0]["context"]
    assert ctx["cluster"] == ctx["user"] == "mothership-default-demo"
    assert connection.origin_of(ctx) == origin


def test_merge_adds_without_touching_other_entries() -> None:
    base = _config("work", "https://work:6443", namespace="team")
    addition = kubeconfigs.renamed(TENANT, "mothership-default-demo")
    merged, replaced = kubeconfigs.merge(base, addition)
    assert replaced == []
    assert merged["current-context"] == "mothership-default-demo"
    assert merged["clusters"][0] == base["clusters"][0]
    assert merged["contexts"][0] == base["contexts"][0]
    assert len(merged["users"]) == 2


def test_merge_again_replaces_only_its_own_entries() -> None:
    base = _config("work", "https://work:6443")
    first, _ = kubeconfigs.merge(base, kubeconfigs.renamed(TENANT, "t"))
    moved = {**TENANT, "clusters": [{"name": "demo", "cluster": {"server": "https://new:1"}}]}
    second, replaced = kubeconfigs.merge(first, kubeconfigs.renamed(moved, "t"), switch=False)
    assert replaced == ["cluster t"]
    assert [c["name"] for c in second["clusters"]] == ["work", "t"]
    assert second["clusters"][1]["cluster"]["server"] == "https://new:1"
    assert second["current-context"] == "t"  # from the first merge; --no-switch kept it


def test_no_switch_keeps_the_current_context() -> None:
    base = _config("work", "https://work:6443")
    merged, _ = kubeconfigs.merge(base, kubeconfigs.renamed(TENANT, "t"), switch=False)
    assert merged["current-context"] == "work"


def test_write_keeps_a_backup_and_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(_config("work", "https://work:6443")))
    path.chmod(0o640)
    merged, _ = kubeconfigs.merge(kubeconfigs.read(path), kubeconfigs.renamed(TENANT, "t"))
    backup = kubeconfigs.write_atomically(path, merged)
    assert backup is not None and yaml.safe_load(backup.read_text())["current-context"] == "work"
    assert yaml.safe_load(path.read_text())["current-context"] == "t"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    new = tmp_path / "sub" / "fresh"
    assert kubeconfigs.write_atomically(new, merged) is None
    assert stat.S_IMODE(new.stat().st_mode) == 0o600


def test_unreadable_target_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [\n")
    with pytest.raises(InvalidInput, match="--merge-into"):
        kubeconfigs.read(path)


def test_merge_target_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert kubeconfigs.merge_target(None) == tmp_path / ".kube" / "config"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    assert kubeconfigs.merge_target(None) == tmp_path / "a"
    assert kubeconfigs.merge_target(tmp_path / "c") == tmp_path / "c"


def test_several_kubeconfig_files_first_definition_wins(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    first = _config("x", "https://a:1")
    first["users"][0]["user"] = {"client-certificate": "certs/x.crt"}
    a.write_text(yaml.safe_dump(first))
    second = _config("x", "https://b:1")
    second["clusters"].append({"name": "y", "cluster": {"server": "https://y:1"}})
    second["current-context"] = "y"
    b.write_text(yaml.safe_dump(second))
    merged = connection.load_merged([a, b])
    assert merged["current-context"] == "x"
    assert [c["cluster"]["server"] for c in merged["clusters"]] == ["https://a:1", "https://y:1"]
    # A relative path is relative to the file that holds it.
    assert merged["users"][0]["user"]["client-certificate"] == str(tmp_path / "certs" / "x.crt")


def test_connect_follows_a_tenant_context_back_to_its_mothership(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mothership = tmp_path / "mothership.kubeconfig"
    mothership.write_text(yaml.safe_dump(_config("ms", "https://ms:6443", namespace="tenants")))
    user = tmp_path / "config"
    origin = {"kubeconfig": str(mothership), "context": "ms"}
    merged, _ = kubeconfigs.merge(None, kubeconfigs.renamed(TENANT, "mothership-t-demo", origin))
    kubeconfigs.write_atomically(user, merged)
    monkeypatch.setenv("KUBECONFIG", str(user))
    target = connection.connect(quiet=True)
    assert (target.server, target.context, target.namespace) == ("https://ms:6443", "ms", "tenants")
    # An explicit --context is obeyed as kubectl would.
    explicit = connection.connect(context="mothership-t-demo", quiet=True)
    assert explicit.server == "https://10.0.0.5:30443"
    assert connection.connect(namespace="other", quiet=True).namespace == "other"


def test_connect_errors_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(_config("ms", "https://ms:6443")))
    with pytest.raises(InvalidInput, match="contexts there: ms"):
        connection.connect(path, context="nope", quiet=True)
    with pytest.raises(InvalidInput, match="no such file"):
        connection.connect(tmp_path / "missing", quiet=True)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "gone"))
    with pytest.raises(InvalidInput, match="names no existing file"):
        connection.connect(quiet=True)


def test_local_mothership_kubeconfig_is_recognised(tmp_path: Path) -> None:
    (tmp_path / "mothership.json").write_text("{}")
    assert kubeconfigs.is_local_mothership_kubeconfig(tmp_path / "kubeconfig")
    assert not kubeconfigs.is_local_mothership_kubeconfig(tmp_path / "config")
