"""The second pinned Kubernetes version for tenant upgrades: pins, bin dirs and images."""

from __future__ import annotations

from pathlib import Path

import pytest

from mothership.testenv import gobuild, paths, pins, realnode


def test_tenant_versions_are_the_previous_and_the_mothership_version_oldest_first() -> None:
    assert pins.TENANT_VERSIONS == (pins.PREVIOUS_KUBERNETES_VERSION, pins.KUBERNETES_VERSION)
    old, new = (tuple(int(p) for p in v[1:].split(".")) for v in pins.TENANT_VERSIONS)
    assert old < new
    # Upgrades go at most one minor at a time.
    assert new[1] - old[1] == 1


def test_tenant_family_builds_the_control_plane_and_node_binaries_at_its_version() -> None:
    """A kubelet may not be newer than its API server: workers of a tenant at this version
    need its kubelet and kube-proxy too."""
    fam = pins.tenant_family("v1.34.4")
    assert fam.name == "kubernetes-v1.34.4"
    assert sorted(b.name for b in fam.binaries) == sorted(
        pins.TENANT_CONTROL_PLANE_BINARIES + pins.TENANT_NODE_BINARIES
    )
    assert all(b.expect == "v1.34.4" for b in fam.binaries)
    assert fam.sibling_version == "v0.34.4"
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in fam.ldflags
    assert pins.tenant_families() == (fam,)


def test_tenant_bin_dir_is_a_sibling_that_does_not_change_the_mothership_version_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(paths.BIN_ENV, raising=False)
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path))
    assert paths.tenant_bin_dir(pins.KUBERNETES_VERSION) == paths.bin_dir()
    old = paths.tenant_bin_dir("v1.34.4")
    assert old.parent == paths.bin_dir().parent
    assert old.name.startswith("tenant-k8s-v1.34.4-")
    # The mothership's version set is computed from its own families only.
    assert all(f.name != "kubernetes-v1.34.4" for f in pins.families())
    monkeypatch.setenv(paths.BIN_ENV, str(tmp_path / "bin"))
    assert paths.tenant_bin_dir("v1.34.4") == tmp_path / "bin" / "v1.34.4"


def test_install_plan_covers_every_binary_in_its_dir() -> None:
    plan = gobuild.plan()
    dirs = {f.name: d for d, f in plan}
    assert dirs["kubernetes"] == paths.bin_dir()
    assert dirs["kubernetes-v1.34.4"] == paths.tenant_bin_dir("v1.34.4")
    per_dir = [(d, b.name) for d, f in plan for b in f.binaries]
    assert len(per_dir) == len(set(per_dir))


def test_local_image_per_version_and_a_clear_error_for_others() -> None:
    assert pins.local_control_plane_image("v1.34.4") == "localhost/mothership/control-plane:v1.34.4"
    assert pins.local_control_plane_image(pins.KUBERNETES_VERSION) == realnode.CONTROL_PLANE_IMAGE
    with pytest.raises(ValueError, match=r"v1\.34\.4, v1\.35\.4"):
        pins.local_control_plane_image("v1.33.0")


def test_older_image_takes_only_kube_binaries_from_its_own_dir(tmp_path: Path) -> None:
    files = realnode.control_plane_image_files(tmp_path, "v1.34.4")
    assert set(files) == {f"/usr/local/bin/{b}" for b in realnode.CONTROL_PLANE_BINARIES}
    own = paths.tenant_bin_dir("v1.34.4")
    for name in realnode.CONTROL_PLANE_BINARIES:
        src = files[f"/usr/local/bin/{name}"]
        assert src.parent == (own if name in pins.TENANT_CONTROL_PLANE_BINARIES else tmp_path)
    current = realnode.control_plane_image_files(tmp_path, pins.KUBERNETES_VERSION)
    assert {p.parent for p in current.values()} == {tmp_path}
