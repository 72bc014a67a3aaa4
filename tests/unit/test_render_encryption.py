"""The tenant API server's EncryptionConfiguration and the Secret that holds it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import yaml

from mothership.render import encryption

NOW = datetime(2026, 12, 5, 20, 30, 1, tzinfo=UTC)
KEY = bytes(range(32))


def test_the_secret_holds_one_secretbox_key_then_identity_and_keeps_its_finalizer() -> None:
    secret = encryption.key_secret("demo", "tenants", KEY, NOW)
    assert secret["metadata"]["name"] == "kmc-demo-encryption"
    assert secret["metadata"]["finalizers"] == [encryption.FINALIZER]
    text = base64.b64decode(secret["data"][encryption.CONFIG_KEY]).decode()
    doc = yaml.safe_load(text)
    assert doc["kind"] == "EncryptionConfiguration"
    (rule,) = doc["resources"]
    assert rule["resources"] == ["secrets"]
    assert [next(iter(p)) for p in rule["providers"]] == ["secretbox", "identity"]
    assert encryption.keys_of(text) == [("key-20261205203001", KEY)]


def test_the_first_key_writes_and_every_key_reads() -> None:
    other = bytes(32)
    doc = encryption.config([("new", other), ("old", KEY)])
    text = yaml.safe_dump(doc)
    assert encryption.keys_of(text) == [("new", other), ("old", KEY)]


@pytest.mark.parametrize("keys", [[], [("short", b"x" * 16)]])
def test_a_config_without_a_usable_key_is_refused(keys: list[tuple[str, bytes]]) -> None:
    with pytest.raises(ValueError):
        encryption.config(keys)


def test_the_api_server_reads_the_file_and_reloads_it() -> None:
    flags = encryption.apiserver_flags("/etc/kubernetes/encryption")
    assert flags == [
        "--encryption-provider-config=/etc/kubernetes/encryption/encryption-config.yaml",
        "--encryption-provider-config-automatic-reload=true",
    ]
    volume = encryption.volume("demo")
    assert volume["secret"]["secretName"] == "kmc-demo-encryption"
    assert "optional" not in volume["secret"]
