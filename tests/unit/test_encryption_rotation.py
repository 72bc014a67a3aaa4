"""Key rotation's steps (render/encryption.py) and when the operator may take the next."""

from __future__ import annotations

from datetime import UTC, datetime

from mothership.controllers.children import Child
from mothership.controllers.encryption_rotation import rolled
from mothership.render import encryption

OLD = ("key-20261201000000", b"o" * 32)
NEW = ("key-20261206120000", b"n" * 32)
OTHER = ("key-20261207000000", b"x" * 32)


def test_a_request_adds_a_key_for_reading_first_without_waiting() -> None:
    plan = encryption.next_rotation("r1", None, None, [OLD], NEW)
    assert plan == encryption.Rotation("r1", [OLD, NEW], encryption.ADDED, after_roll=False)
    # The key that writes is the first one: still the old key.
    assert encryption.keys_of(encryption.config_text(plan.keys))[0] == OLD


def test_then_the_new_key_writes_then_secrets_are_rewritten_and_the_old_key_dropped() -> None:
    promoted = encryption.next_rotation("r1", "r1", encryption.ADDED, [OLD, NEW], OTHER)
    assert promoted == encryption.Rotation("r1", [NEW, OLD], encryption.PROMOTED, after_roll=True)
    done = encryption.next_rotation("r1", "r1", encryption.PROMOTED, [NEW, OLD], OTHER)
    assert done == encryption.Rotation("r1", [NEW], encryption.DONE, after_roll=True, rewrite=True)
    assert encryption.next_rotation("r1", "r1", encryption.DONE, [NEW], OTHER) is None


def test_nothing_to_do_without_a_new_request() -> None:
    assert encryption.next_rotation(None, None, None, [OLD], NEW) is None
    assert encryption.next_rotation("", None, None, [OLD], NEW) is None
    assert encryption.next_rotation("r1", "r1", encryption.DONE, [NEW], OTHER) is None


def test_a_request_made_during_a_rotation_waits_for_it_then_starts_its_own() -> None:
    # r2 comes while r1 is half done: r1 goes on (its record and keys are not lost).
    going_on = encryption.next_rotation("r2", "r1", encryption.ADDED, [OLD, NEW], OTHER)
    assert going_on is not None and going_on.request == "r1"
    assert going_on.step == encryption.PROMOTED
    finishing = encryption.next_rotation("r2", "r1", encryption.PROMOTED, [NEW, OLD], OTHER)
    assert finishing is not None and (finishing.request, finishing.keys) == ("r1", [NEW])
    # r1 done: r2 starts from the key r1 left.
    second = encryption.next_rotation("r2", "r1", encryption.DONE, [NEW], OTHER)
    assert second == encryption.Rotation("r2", [NEW, OTHER], encryption.ADDED, after_roll=False)


def test_revisions_follow_the_text_and_a_new_secret_carries_its_own() -> None:
    one, two = encryption.config_text([OLD]), encryption.config_text([OLD, NEW])
    assert encryption.revision(one) == encryption.revision(one) != encryption.revision(two)
    secret = encryption.key_secret("c", "ns", b"k" * 32, datetime(2026, 12, 6, tzinfo=UTC))
    import base64

    text = base64.b64decode(secret["data"][encryption.CONFIG_KEY]).decode()
    assert secret["metadata"]["annotations"] == {
        encryption.REVISION_ANNOTATION: encryption.revision(text)
    }


def test_the_revision_goes_on_the_pod_template_only_when_known() -> None:
    def sts() -> dict:
        return {"metadata": {"name": "kmc-c"}, "spec": {"template": {"metadata": {}}}}

    marked = sts()
    encryption.mark(marked, "c", "abc")
    assert marked["metadata"]["annotations"] == {
        encryption.KEY_ANNOTATION: "kmc-c-encryption",
        encryption.REVISION_ANNOTATION: "abc",
    }
    assert marked["spec"]["template"]["metadata"]["annotations"] == {
        encryption.REVISION_ANNOTATION: "abc"
    }
    # A key Secret from before rotations (no revision): nothing new on the template, so
    # upgrading the operator rolls nothing.
    old = sts()
    encryption.mark(old, "c", None)
    assert old["metadata"]["annotations"] == {encryption.KEY_ANNOTATION: "kmc-c-encryption"}
    assert old["spec"]["template"]["metadata"] == {}


def _sts(revision: str | None, generation: int = 2, **status: object) -> Child:
    full = {
        "replicas": 2,
        "readyReplicas": 2,
        "updatedReplicas": 2,
        "currentRevision": "kmc-c-2",
        "updateRevision": "kmc-c-2",
        "observedGeneration": 2,
        **status,
    }
    notes = {encryption.REVISION_ANNOTATION: revision} if revision else {}
    return Child("StatefulSet", "kmc-c", None, notes, full, generation)


def test_the_next_step_waits_until_every_replica_started_with_the_config() -> None:
    assert rolled(_sts("abc"), "abc")
    assert not rolled(None, "abc")
    assert not rolled(_sts("old"), "abc")  # the new revision not even written yet
    assert not rolled(_sts("abc", generation=3), "abc")  # not seen by the controller yet
    assert not rolled(_sts("abc", currentRevision="kmc-c-1"), "abc")  # rolling
    assert not rolled(_sts("abc", updatedReplicas=1), "abc")
    assert not rolled(_sts("abc", readyReplicas=1), "abc")


def test_both_distributions_put_the_revision_on_their_pod_template() -> None:
    from mothership.api.k0smotron.v1beta2 import Cluster
    from mothership.render.cluster import render_cluster
    from mothership.render.facts import Facts
    from mothership.render.kubernetes_control_plane import render_control_plane

    for distribution, render in (("k0s", render_cluster), ("kubernetes", render_control_plane)):
        cluster = Cluster.model_validate(
            {"metadata": {"name": "c", "namespace": "ns"}, "spec": {"distribution": distribution}}
        )
        for revision in ("abc", None):
            facts = Facts(external_address="192.0.2.1", encryption_revision=revision)
            objects = render(cluster, facts)
            (sts,) = [
                o
                for o in objects
                if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "kmc-c"
            ]
            template = sts["spec"]["template"]["metadata"].get("annotations") or {}
            assert template.get(encryption.REVISION_ANNOTATION) == revision, distribution
            assert sts["metadata"]["annotations"][encryption.KEY_ANNOTATION] == "kmc-c-encryption"
