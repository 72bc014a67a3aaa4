"""The local mothership on kine/SQLite instead of etcd: a real API server on kine."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap

from mothership.testenv import kube
from mothership.testenv.local import LocalMothership
from tests.leftovers import processes_mentioning


def test_kine_mothership_stores_and_keeps_data_across_restart(tmp_path: Path) -> None:
    ms = LocalMothership.configure("kine-test", state_dir=tmp_path, datastore="kine", nodes="none")
    try:
        ms.up(timeout=120)
        kc = kube.client(ms.cfg.kubeconfig)
        kc.create(ConfigMap(metadata=ObjectMeta(name="kept", namespace="default"), data={"a": "1"}))
        ms.down()
        assert processes_mentioning(tmp_path) == []
        assert (tmp_path / "kine" / "state.db").exists()

        ms = LocalMothership.configure(
            "kine-test", state_dir=tmp_path, datastore="kine", nodes="none"
        )
        ms.up(timeout=120)
        kc = kube.client(ms.cfg.kubeconfig)
        assert kc.get(ConfigMap, "kept", namespace="default").data == {"a": "1"}
    finally:
        ms.down()
    assert processes_mentioning(tmp_path) == []


def test_switching_the_datastore_of_existing_state_is_refused(tmp_path: Path) -> None:
    LocalMothership.configure("x", state_dir=tmp_path, datastore="kine", nodes="none").cfg.save()
    with pytest.raises(ValueError, match="--datastore kine"):
        LocalMothership.configure("x", state_dir=tmp_path, datastore="etcd", nodes="none")
