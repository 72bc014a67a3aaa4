"""The checked-in CRDs (deploy/crds, kept equal to the models by a unit test), for tests
whose mothership runs an operator of their own."""

from __future__ import annotations

from pathlib import Path

from lightkube import Client
from lightkube.codecs import load_all_yaml

CRD_DIR = Path(__file__).resolve().parents[1] / "deploy" / "crds"


def apply_checked_in_crds(client: Client) -> Client:
    """Server-side apply every CRD under deploy/crds (a re-run changes nothing); returns the
    client, so a fixture can end with it."""
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for obj in load_all_yaml(path.read_text()):
            client.apply(obj, field_manager="mothership-tests", force=True)
    return client
