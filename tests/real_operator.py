"""Module fixtures for tests on the session's real-node mothership: a client with the
checked-in CRDs applied, and the operator running on the host against it.

tests/conftest.py offers both to every module; a module that defines its own `kc` or
`operator` uses that one. Each module gets its own operator, stopped when the module ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lightkube import Client

from mothership.testenv import kube
from mothership.testenv.local import LocalMothership
from mothership.testenv.localoperator import monitoring_image_args
from tests.crds import apply_checked_in_crds
from tests.integration.test_kubernetes_distribution import ETCD_IMAGE, IMAGE_TEMPLATE
from tests.operator_proc import Operator


@pytest.fixture(scope="module")
def kc(mothership_real: LocalMothership) -> Client:
    return apply_checked_in_crds(kube.client(mothership_real.cfg.kubeconfig))


@pytest.fixture(scope="module")
def operator(
    mothership_real: LocalMothership, kc: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(
        mothership_real.cfg.kubeconfig,
        tmp_path_factory.mktemp("op") / "operator.log",
        IMAGE_TEMPLATE,
        ETCD_IMAGE,
        extra_args=tuple(monitoring_image_args(mothership_real.cfg)),
        node_netns=mothership_real.cfg.node_netns,
    )
    op.start()
    yield op
    op.stop()
