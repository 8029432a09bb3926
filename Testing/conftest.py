"""Shared fixtures: the real-data folder and Slicer's sources (each skipped visibly when absent),
and phantom writing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from irregular_series.headers import STRICT_ENV

from phantoms import CASES, Phantom

# A fault of the tool while reading one file is raised, not just reported, so that programming
# errors fail the suite (subprocesses inherit it).
os.environ[STRICT_ENV] = "1"

REALDATA_ENV = "IRREGULAR_SERIES_REALDATA"
REALDATA_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Root of the real public DICOM sets (see its README.md); tests skip when it is absent."""
    root = Path(os.environ.get(REALDATA_ENV) or REALDATA_DEFAULT)
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set {REALDATA_ENV} to its folder)")
    return root


SLICER_API_ENV = "IRREGULAR_SERIES_SLICER_API"
SLICER_API_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "slicer-api"
SLICER_RELEASES = ("v5.10.0", "v5.12.3")
"""The Slicer releases the extension supports, as folders of ``slicer_api`` (see its README)."""


@pytest.fixture(scope="session")
def slicer_api() -> Path:
    """Root of Slicer's Python sources per release (``<root>/<tag>/...``); tests skip when absent."""
    root = Path(os.environ.get(SLICER_API_ENV) or SLICER_API_DEFAULT)
    if not root.is_dir():
        pytest.skip(f"Slicer's sources not found at {root} (set {SLICER_API_ENV} to their folder)")
    return root


@pytest.fixture
def write_phantom(tmp_path: Path) -> Callable[..., Path]:
    """``write_phantom(case, **write_kwargs)`` writes a phantom (a ``Phantom`` or a name from
    ``phantoms.CASES``) into its own folder under ``tmp_path`` and returns that folder."""

    def write(case: Phantom | str, **kwargs) -> Path:
        phantom = CASES[case]() if isinstance(case, str) else case
        folder = tmp_path / phantom.name
        phantom.write(folder, **kwargs)
        return folder

    return write


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what a test needs: ``realdata`` when it uses the real-data folder, ``slicer`` when its
    module runs real Slicer code (imports the slicer-core wheel), so ``-m "not slicer"`` works."""
    for item in items:
        if "realdata" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
        module = getattr(item, "module", None)
        if module is not None and "slicer" in vars(module):
            item.add_marker(pytest.mark.slicer)


@pytest.fixture
def scene():
    """A real MRML scene of the slicer-core wheel, cleared after the test."""
    slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")
    mrml_scene = slicer.vtkMRMLScene()
    yield mrml_scene
    mrml_scene.Clear(1)
