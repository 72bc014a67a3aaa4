"""Freeing a CustomResourceDefinition that the API server left half-deleted.

The API server's CRD finalizer lists and deletes a CRD's instances, then removes its own
finalizer with a status update. When the LIST is refused (429 "storage is (re)initializing":
the watch cache of a kind nobody listed yet is still filling), it records the failure in the
CRD's status and retries 5 ms later from its informer's copy of the CRD, which does not hold
that status write yet; the retry's update conflicts, and the finalizer returns expecting an
event to call it again. The event that comes changes only the Terminating condition, which
the finalizer ignores on purpose, so the CRD stays until the informer's periodic resync, up to
five minutes later (seen: a CRD deleted three seconds after it was created went 3 min 16 s
later). Any other change of the CRD queues it again at once, so whoever waits for CRDs to go
annotates those that linger: an uninstall or a test teardown ends in seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
import time

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.types import PatchType

NUDGE_ANNOTATION = "mothership.io/deletion-nudged-at"
# Long enough that a CRD on its normal way out (its instances being deleted) is left alone.
LINGER_SECONDS = 10.0


class Nudger:
    """Annotates each CRD of `names` that has been terminating for more than `linger`
    seconds, at most once per `linger` seconds per CRD; call it from a wait's poll.

    What each call found is kept (`looked`, `gone`), so the wait that calls it need not GET
    the same CRDs again to know whether they are still there.
    """

    def __init__(self, client: Client, names: list[str], linger: float = LINGER_SECONDS) -> None:
        self.client = client
        self.names = names
        self.linger = linger
        self.nudged: dict[str, float] = {}
        self.looked: dict[str, bool] = {}  # this call's GETs: name -> still there
        self.gone: set[str] = set()  # found deleted (a deleted CRD does not come back)

    def __call__(self) -> list[str]:
        """The CRDs nudged by this call."""
        done = []
        now = time.monotonic()
        self.looked = {}
        for name in self.names:
            if name in self.gone or now - self.nudged.get(name, -self.linger) < self.linger:
                continue
            crd = self._get(name)
            self.looked[name] = crd is not None
            if crd is None:
                self.gone.add(name)
            elif self._lingering(crd):
                self._nudge(name)
                self.nudged[name] = now
                done.append(name)
        return done

    def still_there(self, name: str) -> bool | None:
        """What the last call found for this CRD; None when it did not look."""
        if name in self.gone:
            return False
        return self.looked.get(name)

    def _get(self, name: str) -> CustomResourceDefinition | None:
        try:
            return self.client.get(CustomResourceDefinition, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise

    def _lingering(self, crd: CustomResourceDefinition) -> bool:
        since = crd.metadata.deletionTimestamp if crd.metadata else None
        if since is None:
            return False
        age = dt.datetime.now(dt.UTC) - since
        return age.total_seconds() > self.linger

    def _nudge(self, name: str) -> None:
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        patch = {"metadata": {"annotations": {NUDGE_ANNOTATION: stamp}}}
        try:
            self.client.patch(CustomResourceDefinition, name, patch, patch_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status.code not in (404, 409):  # gone meanwhile, or changed: both fine
                raise
