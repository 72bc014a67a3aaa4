from __future__ import annotations

import pytest

from mothership.testenv import gomod
from mothership.testenv.pins import families, kubernetes_family, version_set

UPSTREAM = """module example.com/server/v3

go 1.26.0

toolchain go1.26.10

require (
\tgo.etcd.io/etcd/api/v3 v3.6.16
)

replace (
\tgo.etcd.io/etcd/api/v3 => ../api // local sibling
\tgo.etcd.io/etcd/client/v3 => ../client/v3
\tgo.etcd.io/bbolt v1.4.0 => go.etcd.io/bbolt v1.4.3
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
replace k8s.io/api => ./staging/src/k8s.io/api
"""


def test_parse_replaces_reads_block_and_single_line_forms() -> None:
    got = gomod.parse_replaces(UPSTREAM)
    assert [(r.old, r.old_version, r.new, r.new_version) for r in got] == [
        ("go.etcd.io/etcd/api/v3", "", "../api", ""),
        ("go.etcd.io/etcd/client/v3", "", "../client/v3", ""),
        ("go.etcd.io/bbolt", "v1.4.0", "go.etcd.io/bbolt", "v1.4.3"),
        ("go.etcd.io/etcd", "", "./FORBIDDEN_DEPENDENCY", ""),
        ("k8s.io/api", "", "./staging/src/k8s.io/api", ""),
    ]


def test_go_directive() -> None:
    assert gomod.parse_go_directive(UPSTREAM) == "1.26.0"
    assert gomod.parse_go_directive("module x\n") == ""


def test_wrapper_pins_siblings_keeps_versions_and_drops_guards() -> None:
    got = gomod.wrapper_replaces(gomod.parse_replaces(UPSTREAM), "go.etcd.io/etcd/", "v3.6.16")
    rendered = {f"{r.old} {r.old_version}".strip(): f"{r.new} {r.new_version}" for r in got}
    assert rendered == {
        "go.etcd.io/etcd/api/v3": "go.etcd.io/etcd/api/v3 v3.6.16",
        "go.etcd.io/etcd/client/v3": "go.etcd.io/etcd/client/v3 v3.6.16",
        "go.etcd.io/bbolt v1.4.0": "go.etcd.io/bbolt v1.4.3",
    }


def test_render_wrapper_is_a_valid_looking_go_mod() -> None:
    replaces = gomod.wrapper_replaces(gomod.parse_replaces(UPSTREAM), "go.etcd.io/etcd/", "v3.6.16")
    text = gomod.render_wrapper(
        "etcd", "1.26.0", [("go.etcd.io/etcd/server/v3", "v3.6.16")], replaces
    )
    assert text.startswith("module mothership.local/build/etcd\n\ngo 1.26.0\n")
    assert "\tgo.etcd.io/etcd/server/v3 v3.6.16\n" in text
    assert "\tgo.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.16\n" in text
    # The wrapper's own replaces parse back to what went in.
    assert gomod.parse_replaces(text) == replaces


def test_malformed_replace_is_an_error() -> None:
    with pytest.raises(ValueError, match="malformed"):
        gomod.parse_replaces("replace foo bar\n")


def test_kubernetes_family_maps_staging_to_v0_and_sets_version_ldflags() -> None:
    fam = kubernetes_family("v1.35.4")
    assert fam.sibling_version == "v0.35.4"
    assert "-X k8s.io/component-base/version.gitVersion=v1.35.4" in fam.ldflags
    assert "-X k8s.io/component-base/version.gitMinor=35" in fam.ldflags
    assert {b.name for b in fam.binaries} >= {
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
    }


def test_binary_names_are_unique_and_version_set_is_stable() -> None:
    names = [b.name for f in families() for b in f.binaries]
    assert len(names) == len(set(names))
    assert version_set() == version_set()
    assert version_set().startswith("k8s-v1.35.4-")


K0S_LIKE = """module github.com/k0sproject/k0s

go 1.24.2

require github.com/a/b v1.0.0

require (
\tk8s.io/kubernetes v1.33.8
\tk8s.io/api v0.33.8 // indirect
\tk8s.io/kube-openapi v0.0.0-20250318190949-c8a335a9a2ff
\tk8s.io/utils v0.33.8
)

replace (
\tk8s.io/api => k8s.io/api v0.33.8
\tk8s.io/client-go => k8s.io/client-go v0.33.8
\tk8s.io/klog => ../klog
)
"""
BUMPS = (("k8s.io/kubernetes", "v1.33.8", "v1.33.13"), ("k8s.io/", "v0.33.8", "v0.33.13"))


def test_parse_requires_reads_both_forms_and_ignores_comments() -> None:
    assert gomod.parse_requires(K0S_LIKE) == [
        ("github.com/a/b", "v1.0.0"),
        ("k8s.io/kubernetes", "v1.33.8"),
        ("k8s.io/api", "v0.33.8"),
        ("k8s.io/kube-openapi", "v0.0.0-20250318190949-c8a335a9a2ff"),
        ("k8s.io/utils", "v0.33.8"),
    ]


def test_refused_versions_are_moved_in_replaces_and_uncovered_requires() -> None:
    got = gomod.bump_versions(gomod.parse_replaces(K0S_LIKE), gomod.parse_requires(K0S_LIKE), BUMPS)
    assert got == [
        gomod.Replace("k8s.io/api", "", "k8s.io/api", "v0.33.13"),
        gomod.Replace("k8s.io/client-go", "", "k8s.io/client-go", "v0.33.13"),
        gomod.Replace("k8s.io/klog", "", "../klog", ""),  # local paths untouched
        gomod.Replace("k8s.io/kubernetes", "", "k8s.io/kubernetes", "v1.33.13"),
        gomod.Replace("k8s.io/utils", "", "k8s.io/utils", "v0.33.13"),
    ]  # kube-openapi is at another version: left alone; api was already replaced


def test_no_bumps_leave_replaces_as_they_are() -> None:
    replaces = gomod.parse_replaces(K0S_LIKE)
    assert gomod.bump_versions(replaces, gomod.parse_requires(K0S_LIKE), ()) == replaces
