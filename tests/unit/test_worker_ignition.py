"""Ignition bootstrap data (K0sWorkerConfig provisioner type ignition): the pure render."""

from __future__ import annotations

import base64
import json

import pytest

from mothership.api.bootstrap.v1beta2 import SUCCESS_SENTINEL
from mothership.render import worker_ignition as wi
from mothership.render.worker_bootstrap import BootstrapFile


def _decode(entry: dict) -> str:
    source = entry["contents"]["source"]
    assert source.startswith("data:;base64,")
    return base64.b64decode(source.removeprefix("data:;base64,")).decode()


def _render(**kw: object) -> dict:
    text = wi.ignition_config(
        "#!/bin/sh\necho joined\n",
        files=[BootstrapFile("/etc/x.conf", "x=1\n", "0600")],
        pre_commands=["echo pre"],
        post_commands=["echo post"],
        working_dir="/opt/boot",
        **kw,  # type: ignore[arg-type]
    )
    return json.loads(text)


def test_files_the_run_script_and_a_unit_that_runs_it_once() -> None:
    doc = _render()
    assert doc["ignition"] == {"version": "3.4.0"}
    files = {f["path"]: f for f in doc["storage"]["files"]}
    boot = "/opt/boot"
    assert list(files) == [
        "/etc/x.conf",
        f"{boot}/mothership-join.sh",
        f"{boot}/mothership-bootstrap.sh",
    ]
    assert files["/etc/x.conf"]["mode"] == 0o600 and _decode(files["/etc/x.conf"]) == "x=1\n"
    assert files["/opt/boot/mothership-join.sh"]["mode"] == 0o700
    assert _decode(files["/opt/boot/mothership-join.sh"]) == "#!/bin/sh\necho joined\n"
    run = _decode(files["/opt/boot/mothership-bootstrap.sh"]).splitlines()
    assert run[:2] == ["#!/bin/sh", "set -eu"]
    assert run[2:] == [
        "sh -c 'echo pre'",
        "sh -c 'sh /opt/boot/mothership-join.sh'",
        "sh -c 'echo post'",
        f"sh -c 'mkdir -p /run/cluster-api && touch {SUCCESS_SENTINEL}'",
    ]
    (unit,) = doc["systemd"]["units"]
    assert unit["name"] == wi.UNIT and unit["enabled"] is True
    assert "ExecStart=/bin/sh /opt/boot/mothership-bootstrap.sh" in unit["contents"]
    assert f"ConditionPathExists=!{wi.DONE_MARKER}" in unit["contents"]
    assert "After=network-online.target" in unit["contents"]


def test_equal_input_gives_equal_bytes() -> None:
    assert wi.ignition_config("x") == wi.ignition_config("x")


def test_an_ignition_additional_config_is_merged_by_ignition() -> None:
    extra = json.dumps({"ignition": {"version": "3.3.0"}, "passwd": {"users": [{"name": "ops"}]}})
    doc = _render(additional_config=extra)
    (merge,) = doc["ignition"]["config"]["merge"]
    assert _decode({"contents": merge}) == extra


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("variant: fcos\nversion: 1.5.0\n", "does not translate Butane: run `butane`"),
        ('{"ignition": {"version": "2.2.0"}}', "needs ignition.version 3.x"),
        ("[1, 2]", "needs ignition.version 3.x"),
    ],
)
def test_butane_and_old_specs_are_refused_naming_the_field(extra: str, message: str) -> None:
    with pytest.raises(wi.IgnitionError, match=message) as exc:
        _render(additional_config=extra)
    assert str(exc.value).startswith("spec.provisioner.ignition.additionalConfig: ")


def test_relative_paths_and_non_octal_modes_are_refused() -> None:
    with pytest.raises(wi.IgnitionError, match="absolute paths only"):
        wi.ignition_config("x", files=[BootstrapFile("etc/x", "")])
    with pytest.raises(wi.IgnitionError, match="not octal"):
        wi.ignition_config("x", files=[BootstrapFile("/etc/x", "", "rw-r--r--")])
