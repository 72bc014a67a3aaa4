"""The local mothership's volume provisioner: a small process that gives claims directories.

Started and supervised by `LocalMothership` next to the real node. It installs the
default StorageClass, then follows claims and volumes (watches wake it, a periodic full
pass makes up for any missed event) and acts on what `localvolumes` decides:

* a pending claim of the class gets a directory under `<state-dir>/volumes/` and a
  `local` PV bound to it;
* a released PV with the Delete policy is deleted; its finalizer removes the directory
  (a Retain PV deleted by hand keeps it);
* a bigger request on a bound claim grows the PV and the claim's status capacity.

Run: python -m mothership.testenv.provisioner --kubeconfig K --volumes DIR --node NAME
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, cast

from lightkube import ApiError, Client
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, PersistentVolume, PersistentVolumeClaim
from lightkube.resources.storage_v1 import StorageClass
from lightkube.types import PatchType

from mothership.testenv import kube, passloop
from mothership.testenv import localvolumes as lv
from mothership.testenv.passloop import log

RESYNC_SECONDS = 30.0
HEARTBEAT = ".provisioner-heartbeat"
# The heartbeat is written after every full pass; older than this means the loop is stuck.
HEARTBEAT_STALE_SECONDS = 3 * RESYNC_SECONDS


def volumes_dir(state_dir: Path) -> Path:
    """Where a mothership's volumes live: inside its state dir, so `--purge` removes them."""
    return state_dir / "volumes"


def heartbeat_path(volumes: Path) -> Path:
    return volumes / HEARTBEAT


def healthy(volumes: Path, pid: int | None = None) -> bool:
    """Whether the provisioner (process `pid`, if given) finished a pass recently.

    The heartbeat holds the writer's pid, so a fresh start is not mistaken for healthy
    on the strength of the previous run's file.
    """
    path = heartbeat_path(volumes)
    try:
        age = time.time() - path.stat().st_mtime
        writer = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    return age < HEARTBEAT_STALE_SECONDS and (pid is None or writer == pid)


class Provisioner:
    def __init__(self, client: Client, volumes: Path, node: str) -> None:
        self.client = client
        self.volumes = volumes
        self.node = node
        self._warned: set[str] = set()

    # -- the pass -------------------------------------------------------------------

    def ensure_storage_class(self) -> dict[str, Any]:
        try:
            return self.client.get(StorageClass, lv.STORAGE_CLASS).to_dict()
        except ApiError as exc:
            if exc.status.code != 404:
                raise
        # Created once, never overwritten: a user may have changed it on purpose.
        created = self.client.create(cast(StorageClass, StorageClass.from_dict(lv.storage_class())))
        log(f"created StorageClass {lv.STORAGE_CLASS} (default, provisioner {lv.PROVISIONER})")
        return created.to_dict()

    def reconcile(self) -> None:
        sc = self.ensure_storage_class()
        mode = sc.get("volumeBindingMode") or "Immediate"
        policy = sc.get("reclaimPolicy") or "Delete"
        pvs = {
            str(pv.metadata and pv.metadata.name): pv.to_dict()
            for pv in self.client.list(PersistentVolume)
        }
        for claim in self.client.list(PersistentVolumeClaim, namespace="*"):
            pvc = claim.to_dict()
            volume = pvs.get(pvc["spec"].get("volumeName") or "")
            if volume is not None:
                self._maybe_expand(pvc, volume)
            elif lv.wants_volume(pvc, mode):
                self._provision(pvc, pvs, policy)
        for pv in pvs.values():
            if lv.should_reclaim(pv):
                log(f"deleting released volume {pv['metadata']['name']}")
                try:
                    self.client.delete(PersistentVolume, pv["metadata"]["name"])
                except ApiError as exc:
                    if exc.status.code != 404:
                        raise
            action = lv.finalize_action(pv)
            if action:
                self._finalize(pv, action)
        heartbeat_path(self.volumes).write_text(f"{os.getpid()}\n")

    def _provision(self, pvc: dict[str, Any], pvs: dict[str, Any], policy: str) -> None:
        meta = pvc["metadata"]
        problem = lv.claim_problem(pvc)
        if problem:
            self._warn(pvc, "ProvisioningFailed", problem)
            return
        selected = (meta.get("annotations") or {}).get(lv.ANN_SELECTED_NODE)
        if selected and selected != self.node:
            self._warn(
                pvc,
                "ProvisioningFailed",
                f"{lv.STORAGE_CLASS} only has volumes on node {self.node}, "
                f"the scheduler chose {selected}",
            )
            return
        pv = lv.persistent_volume(pvc, self.volumes, self.node, policy)
        name = pv["metadata"]["name"]
        if name in pvs:
            return  # created on an earlier pass; the PV controller binds it
        path = lv.volume_dir(self.volumes, name)
        path.mkdir(parents=True, exist_ok=True)
        # Writable by any pod user, like the volumes of other host-directory provisioners;
        # an fsGroup in the pod narrows it.
        path.chmod(0o777)
        try:
            self.client.create(cast(PersistentVolume, PersistentVolume.from_dict(pv)))
        except ApiError as exc:
            if exc.status.code != 409:
                raise
        pvs[name] = pv
        log(f"provisioned {name} at {path} for {meta['namespace']}/{meta['name']}")
        self._event(pvc, "Normal", "ProvisioningSucceeded", f"volume {name} at {path}")

    def _maybe_expand(self, pvc: dict[str, Any], pv: dict[str, Any]) -> None:
        size = lv.expansion(pvc, pv)
        if not size:
            return
        meta = pvc["metadata"]
        name = pv["metadata"]["name"]
        self.client.patch(
            PersistentVolume,
            name,
            {"spec": {"capacity": {"storage": size}}},
            patch_type=PatchType.MERGE,
        )
        self.client.patch(
            PersistentVolumeClaim.Status,
            meta["name"],
            lv.resize_status_patch(pvc, size),
            namespace=meta["namespace"],
            patch_type=PatchType.MERGE,
        )
        log(f"resized {name} to {size} for {meta['namespace']}/{meta['name']}")
        self._event(pvc, "Normal", "VolumeResizeSuccessful", f"volume {name} is now {size}")

    def _finalize(self, pv: dict[str, Any], action: str) -> None:
        name = pv["metadata"]["name"]
        if action == "delete-data":
            path = lv.volume_dir(self.volumes, name)
            if path.is_symlink() or not path.resolve().is_relative_to(self.volumes.resolve()):
                raise RuntimeError(f"refusing to remove {path}: not a directory under the root")
            if path.exists():
                shutil.rmtree(path)
            log(f"removed the data of {name} ({path})")
        else:
            log(f"kept the data of {name} (reclaim policy Retain)")
        finalizers = [f for f in pv["metadata"].get("finalizers") or [] if f != lv.FINALIZER]
        try:
            self.client.patch(
                PersistentVolume,
                name,
                [
                    {
                        "op": "test",
                        "path": "/metadata/resourceVersion",
                        "value": pv["metadata"]["resourceVersion"],
                    },
                    {"op": "replace", "path": "/metadata/finalizers", "value": finalizers},
                ],
                patch_type=PatchType.JSON,
            )
        except ApiError as exc:
            if exc.status.code not in (404, 409, 422):
                raise  # changed meanwhile: the next pass sees the new version

    # -- events ---------------------------------------------------------------------

    def _warn(self, pvc: dict[str, Any], reason: str, message: str) -> None:
        key = f"{pvc['metadata']['uid']}/{message}"
        if key in self._warned:
            return
        self._warned.add(key)
        log(f"{pvc['metadata']['namespace']}/{pvc['metadata']['name']}: {message}")
        self._event(pvc, "Warning", reason, message)

    def _event(self, pvc: dict[str, Any], kind: str, reason: str, message: str) -> None:
        meta = pvc["metadata"]
        now = dt.datetime.now(dt.UTC)
        try:
            self.client.create(
                Event(
                    metadata=ObjectMeta(
                        generateName=f"{meta['name']}.", namespace=meta["namespace"]
                    ),
                    involvedObject=ObjectReference(
                        apiVersion="v1",
                        kind="PersistentVolumeClaim",
                        name=meta["name"],
                        namespace=meta["namespace"],
                        uid=meta["uid"],
                    ),
                    reason=reason,
                    message=message,
                    type=kind,
                    source=EventSource(component=lv.FIELD_MANAGER),
                    firstTimestamp=now,
                    lastTimestamp=now,
                    count=1,
                )
            )
        except ApiError as exc:  # an event is a courtesy; never fail the pass over one
            log(f"could not record event {reason}: {exc}")

    # -- the loop -------------------------------------------------------------------

    def run(self) -> None:
        self.volumes.mkdir(parents=True, exist_ok=True)
        log(f"provisioning {lv.STORAGE_CLASS} volumes for node {self.node} in {self.volumes}")
        # settle: a burst of events (a StatefulSet's claims) makes one pass.
        passloop.run(
            self.client,
            ((PersistentVolumeClaim, "*"), (PersistentVolume, None)),
            self.reconcile,
            resync=RESYNC_SECONDS,
            settle=0.2,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--volumes", type=Path, required=True, help="directory of the volumes")
    parser.add_argument("--node", required=True, help="the node whose disk holds the volumes")
    args = parser.parse_args(argv)
    client = kube.client(args.kubeconfig, field_manager=lv.FIELD_MANAGER)
    Provisioner(client, args.volumes.resolve(), args.node).run()
    return 0


def argv(kubeconfig: Path, volumes: Path, node: str) -> list[str]:
    """The command line LocalMothership supervises."""
    return [
        sys.executable,
        "-m",
        "mothership.testenv.provisioner",
        f"--kubeconfig={kubeconfig}",
        f"--volumes={volumes}",
        f"--node={node}",
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
