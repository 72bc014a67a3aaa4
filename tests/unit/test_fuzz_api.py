"""Property-based tests (hypothesis) over the k0smotron.io models, admission and rendering.

Objects come from tests/unit/fuzz_strategies.py: built from the models' shapes with values
people actually type, kept only when the CRD schema lets them through (as the API server
would). The properties:

1. A Cluster (v1beta1, v1beta2; k0s and kubernetes; CREATE and UPDATE) is either refused
   by admission with every finding naming a field of the submitted version and saying
   something, or accepted and then parses as a v1beta2 model and renders; a
   RenderError/PatchError must name the spec field at fault.
2. Conversion round-trips exactly, both ways, with the API server pruning in between.
3. A JoinTokenRequest is refused naming a field, or accepted and usable by the controller.

CI runs the ``ci`` profile (tests/conftest.py: few examples, derandomized). The nightly
size (10,000 examples per property, random seeds):

    MOTHERSHIP_FUZZ=nightly python -m pytest tests/unit/test_fuzz_api.py \
        --hypothesis-show-statistics
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any
from unittest import mock

from hypothesis import assume, event, example, given
from hypothesis import strategies as st

from mothership.api.k0smotron import v1beta2
from mothership.api.k0smotron.convert import V1BETA1, V1BETA2, convert
from mothership.controllers import kubernetes_distribution
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts, RenderError
from mothership.render.join_token import parse_duration
from mothership.render.patches import PatchError
from mothership.webhooks import defaults, validate
from tests.unit.fuzz_strategies import (
    FACTS,
    as_api_server_stores,
    clusters,
    join_token_requests,
    prune,
    schema_has_path,
)

Obj = dict[str, Any]

CONVERSION_DATA = "k0smotron.io/conversion-data"


def admit(submitted: Obj, old: Obj | None = None) -> validate.Result:
    """What the webhooks decide (``old``: the stored object on UPDATE), through their own
    functions, in the server's order (webhooks/server.py): the mutating webhook's defaults
    and single-object rules, the API server's schema check of the patched object, then the
    validating webhook."""
    ops = defaults.admission_patch(submitted, old)
    patched = defaults.apply(submitted, ops)
    mutating = validate.validate(patched, old)
    if mutating.errors:
        return mutating
    stored = as_api_server_stores(patched)
    assert stored is not None, f"the webhook's defaults break the CRD schema: {ops}"
    assert stored == patched, "the webhook's defaults are not what the API server keeps"
    return validate.validate(stored, old, ())


def admitted_object(submitted: Obj, old: Obj | None = None) -> Obj:
    return defaults.apply(submitted, defaults.admission_patch(submitted, old))


def check_problems(obj: Obj, result: validate.Result) -> None:
    """Every finding names a field the submitted version has, and says something."""
    for problem in [*result.errors, *result.warnings]:
        assert problem.path.startswith(("spec.", "metadata.")), problem
        assert schema_has_path(obj["kind"], obj["apiVersion"], problem.path), (
            f"{problem.path!r} is not a field of {obj['apiVersion']} {obj['kind']}: {problem}"
        )
        assert problem.message.strip(), problem


@dataclass(frozen=True)
class Controller:
    """What the controller brings to rendering besides the Cluster."""

    facts: Facts
    recorded_version: str | None
    image_template: str | None


CONTROLLERS = st.builds(
    Controller,
    facts=FACTS.map(lambda kw: Facts(**kw)),
    recorded_version=st.sampled_from([None, "v1.34.2", "v1.35.4"]),
    image_template=st.sampled_from([None, "localhost/mothership/control-plane:{version}"]),
)


def render(obj: Obj, controller: Controller) -> list[Obj] | None:
    """Render an admitted Cluster as the controller does; None when refused at render."""
    cluster = v1beta2.Cluster.model_validate(convert(obj, V1BETA2))
    env = {kubernetes_distribution.IMAGE_TEMPLATE_ENV: controller.image_template or ""}
    with mock.patch.dict(os.environ, env):
        facts = kubernetes_distribution.facts(
            cluster, controller.facts, controller.recorded_version
        )
    try:
        return render_cluster(cluster, facts)
    except (RenderError, PatchError) as exc:
        assert "spec." in str(exc), f"render refused without naming a spec field: {exc}"
        return None


# --- 1. Cluster: refused naming a field, or accepted and rendered -----------------------------


def _cluster_property(raw: Obj, controller: Controller, old: Obj | None = None) -> None:
    submitted = as_api_server_stores(raw)
    assume(submitted is not None)
    assert submitted is not None
    result = admit(submitted, old)
    check_problems(submitted, result)
    if result.errors:
        event("refused by admission")
        return
    objects = render(admitted_object(submitted, old), controller)
    if objects is None:
        event("refused at render")
        return
    event("accepted and rendered")
    assert all(o.get("kind") and o.get("metadata", {}).get("name") for o in objects)


# Found by this property: a manifests volume without a name was admitted and rendering
# crashed with KeyError (render/statefulset.py now refuses it naming the field).
@example(
    {
        "apiVersion": V1BETA2,
        "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"manifests": [{"configMap": {"name": "stack"}}]},
    },
    Controller(Facts(external_address="192.0.2.10"), None, None),
)
@given(clusters(V1BETA2, distribution="k0s"), CONTROLLERS)
def test_v1beta2_k0s_cluster_is_refused_with_a_field_or_renders(
    raw: Obj, controller: Controller
) -> None:
    _cluster_property(raw, controller)


@given(clusters(V1BETA2, distribution="kubernetes"), CONTROLLERS)
def test_v1beta2_kubernetes_cluster_is_refused_with_a_field_or_renders(
    raw: Obj, controller: Controller
) -> None:
    _cluster_property(raw, controller)


@given(clusters(V1BETA1), CONTROLLERS)
def test_v1beta1_cluster_is_refused_with_a_field_or_renders(
    raw: Obj, controller: Controller
) -> None:
    _cluster_property(raw, controller)


@given(
    st.sampled_from([V1BETA1, V1BETA2]).flatmap(lambda v: st.tuples(clusters(v), clusters(v))),
    CONTROLLERS,
)
def test_cluster_update_is_refused_with_a_field_or_renders(
    pair: tuple[Obj, Obj], controller: Controller
) -> None:
    """UPDATE: the first object, once admitted, is the stored one; the edit replaces up to
    three of its spec fields with the second object's (a version bump, a resize, ...)."""
    first, second = pair
    old = as_api_server_stores(first)
    assume(old is not None and not admit(old).errors)
    assert old is not None
    old = admitted_object(old)
    changes = list((second.get("spec") or {}).items())[:3]
    edited = {**old, "spec": {**old.get("spec", {}), **dict(changes)}}
    edited.pop("status", None)
    _cluster_property(copy.deepcopy(edited), controller, old)


# --- 2. conversion round trips ----------------------------------------------------------------


def _stored(raw: Obj) -> Obj:
    # The converter owns its bookkeeping annotation and consumes one it finds (documented in
    # convert._take_stash), so a user-written one is not expected to survive.
    annotations = raw["metadata"].get("annotations")
    if annotations is not None:
        annotations.pop(CONVERSION_DATA, None)
    stored = as_api_server_stores(raw)
    assume(stored is not None)
    assert stored is not None
    return stored


def _through(obj: Obj, version: str) -> Obj:
    """``obj`` read through ``version``: converted, then pruned by that version's schema."""
    return prune(convert(obj, version))


def _objects(api_version: str) -> st.SearchStrategy[Obj]:
    return st.one_of(
        clusters(api_version, with_status=True),
        join_token_requests(api_version, with_status=True),
    )


@given(_objects(V1BETA1))
def test_v1beta1_round_trips_through_v1beta2(raw: Obj) -> None:
    original = _stored(raw)
    there = _through(original, V1BETA2)
    assert _through(there, V1BETA1) == original


@given(_objects(V1BETA2))
def test_v1beta2_round_trips_through_v1beta1(raw: Obj) -> None:
    original = _stored(raw)
    there = _through(original, V1BETA1)
    assert _through(there, V1BETA2) == original


# --- 3. JoinTokenRequest ----------------------------------------------------------------------


def _jtr(expiry: str) -> Obj:
    return {
        "apiVersion": V1BETA2,
        "kind": "JoinTokenRequest",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": {"clusterName": "demo", "expiry": expiry},
    }


# Found by this property: Go durations admission accepts that the controller could not parse
# (render/join_token.parse_duration now reads Go's whole syntax).
@example(_jtr("10μs"))
@example(_jtr("-0s"))
@example(_jtr("+1h"))
@example(_jtr(".5h"))
@example(_jtr("1.h"))
@given(st.one_of(join_token_requests(V1BETA1), join_token_requests(V1BETA2)))
def test_join_token_request_is_refused_with_a_field_or_usable(raw: Obj) -> None:
    submitted = as_api_server_stores(raw)
    assume(submitted is not None)
    assert submitted is not None
    result = admit(submitted)
    check_problems(submitted, result)
    if result.errors:
        event("refused by admission")
        return
    event("accepted")
    jtr = v1beta2.JoinTokenRequest.model_validate(convert(admitted_object(submitted), V1BETA2))
    _, name = jtr.target_cluster()
    assert name
    parse_duration(jtr.spec.expiry)  # what the controller does next (controllers/join_token.py)
