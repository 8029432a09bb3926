"""Shared fixtures: the real-data folder (skipped visibly when absent) and phantom writing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from phantoms import CASES, Phantom

REALDATA_ENV = "IRREGULAR_SERIES_REALDATA"
REALDATA_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Root of the real public DICOM sets (see its README.md); tests skip when it is absent."""
    root = Path(os.environ.get(REALDATA_ENV) or REALDATA_DEFAULT)
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set {REALDATA_ENV} to its folder)")
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
