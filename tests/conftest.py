"""Fixtures for every tier, and each tier's marker: tests under integration/ are marked ``integration``,
those under recipes/ ``recipes`` (see tests/README.md)."""

from pathlib import Path

import pytest

import mindcv_shufflenet  # noqa: F401  (applies the CPU defaults before MindSpore runs a kernel)
from mindcv_shufflenet import runtime
from tests.helpers import run_cli as _run_cli
from tests.helpers import write_messy_folder

TIER_MARKERS = {"integration": pytest.mark.integration, "recipes": pytest.mark.recipes}


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(tests).parts[0]
        if tier in TIER_MARKERS:
            item.add_marker(TIER_MARKERS[tier])


@pytest.fixture(scope="session", autouse=True)
def cpu_pynative():
    """Tests run eagerly on the CPU unless they ask for graph mode."""
    runtime.init_runtime(device="CPU", mode="pynative")
    yield


@pytest.fixture(scope="session")
def run_cli():
    """Run one of the project's commands in a fresh Python, as a user would (``helpers.run_cli``)."""
    return _run_cli


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """The demo's digits as an image folder (train/ and val/), written once for the tests that train on it."""
    from mindcv_shufflenet.data.digits import write_digits_imagefolder

    root = tmp_path_factory.mktemp("digits")
    write_digits_imagefolder(root)
    return root


@pytest.fixture
def graph_mode():
    runtime.set_mode("graph")
    yield
    runtime.set_mode("pynative")


@pytest.fixture(scope="session")
def messy(tmp_path_factory):
    """An image folder holding every kind of bad file beside good images (``helpers.write_messy_folder``)."""
    return write_messy_folder(tmp_path_factory.mktemp("messy"))
