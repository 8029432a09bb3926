"""Grouping scales with the number of images, whatever the number of distinct image sizes and
orientations (issue 17): counted in comparisons and executed lines, never timed, and with the
orientation clusters exactly those of comparing every slice with every cluster."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest

import irregular_series.grouping as grouping
from irregular_series.grouping import cluster_orientations, group_series
from irregular_series.model import SliceHeader

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _slice(i: int, rotation: np.ndarray = np.eye(3), rows: int = 16) -> SliceHeader:
    return SliceHeader(path=f"/in/{i}.dcm", frame=0, number_of_frames=1, sop_instance_uid=f"1.2.3.{i}",
                       sop_class_uid=CT_IMAGE, series_instance_uid="1.2.3", rows=rows, columns=16,
                       row_cosines=tuple(float(v) for v in rotation[:, 0]),
                       col_cosines=tuple(float(v) for v in rotation[:, 1]),
                       position_lps_mm=(0.0, 0.0, float(i % 5)), pixel_spacing_mm=(1.0, 1.0),
                       image_type=("ORIGINAL", "PRIMARY"))


def _rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rodrigues' rotation about ``axis`` by ``angle_deg``."""
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    a = np.radians(angle_deg)
    return np.eye(3) + np.sin(a) * cross + (1 - np.cos(a)) * cross @ cross


def _random_rotations(n: int, seed: int, spread_deg: float | None = None) -> list[np.ndarray]:
    """``n`` rotations: uniform over all orientations, or within ``spread_deg`` of a few bases."""
    rng = np.random.default_rng(seed)
    bases = [np.eye(3), _rotation(np.array([1.0, 0, 0]), 90), _rotation(np.array([0, 1.0, 0]), 90)]
    out = []
    for _ in range(n):
        if spread_deg is None:
            q = rng.normal(size=4)
            w, x, y, z = q / np.linalg.norm(q)
            out.append(np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]))
        else:
            base = bases[rng.integers(len(bases))]
            out.append(_rotation(rng.normal(size=3), rng.uniform(0, spread_deg)) @ base)
    return out


def _every_pair_clusters(slices: list[SliceHeader], tolerance_deg: float) -> list[list[SliceHeader]]:
    """The specification: each slice in turn, compared with the first slice of every cluster so far."""
    limit = np.cos(np.radians(tolerance_deg))
    seeds: list[SliceHeader] = []
    clusters: list[list[SliceHeader]] = []
    for s in slices:
        for seed, members in zip(seeds, clusters):
            if (np.dot(s.row_cosines, seed.row_cosines) >= limit
                    and np.dot(s.col_cosines, seed.col_cosines) >= limit):
                members.append(s)
                break
        else:
            seeds.append(s)
            clusters.append([s])
    return clusters


@pytest.mark.parametrize("tolerance_deg", [0.5, 2.0, 30.0])
def test_orientation_clusters_are_those_of_comparing_every_pair(tolerance_deg):
    # Dense around three bases, so that many orientations lie just inside or just outside the
    # tolerance of a cluster's first one; some repeated exactly.
    rotations = _random_rotations(1500, seed=7, spread_deg=3 * tolerance_deg)
    rotations += rotations[::7]
    slices = [_slice(i, r) for i, r in enumerate(rotations)]
    assert cluster_orientations(slices, tolerance_deg) == _every_pair_clusters(slices, tolerance_deg)


def _comparisons(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the seeds each orientation is compared with (``grouping._within``)."""
    counted = [0]
    real = grouping._within

    def counting(cosines, seeds, limit):
        counted[0] += len(seeds)
        return real(cosines, seeds, limit)

    monkeypatch.setattr(grouping, "_within", counting)
    return counted


def test_orientations_are_compared_with_a_bounded_number_of_clusters(monkeypatch):
    counted = _comparisons(monkeypatch)
    # Scattered over all orientations (nearly every one a cluster of its own) and dense within
    # 3 degrees of three bases (many just within or beyond the 0.5 degree tolerance of another).
    rotations = _random_rotations(20_000, seed=3) + _random_rotations(20_000, seed=4, spread_deg=3.0)
    slices = [_slice(i, r) for i, r in enumerate(rotations)]
    clusters = cluster_orientations(slices, 0.5)
    n = len(slices)
    assert len(clusters) > 20_000 and sum(map(len, clusters)) == n
    # Comparing each slice with every cluster so far would take about n * clusters / 2.
    assert 0 < counted[0] <= 100 * n and counted[0] * 100 < n * len(clusters) / 2


def _lines_executed(run: Callable[[], object]) -> int:
    """Python lines executed by ``run()``, in every function it calls (a count of work, not time)."""
    executed = [0]

    def local(frame, event, arg):
        if event == "line":
            executed[0] += 1
        return local

    sys.settrace(lambda frame, event, arg: local)
    try:
        run()
    finally:
        sys.settrace(None)
    return executed[0]


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: [_slice(i, rows=16 + i) for i in range(n)], id="distinct sizes"),
    pytest.param(lambda n: [_slice(i, r) for i, r in enumerate(_random_rotations(n, seed=5))],
                 id="distinct orientations"),
])
def test_grouping_work_grows_linearly_with_distinct_sizes_and_orientations(make):
    # Every image is a stack of its own: doubling the images doubles the work (it quadrupled,
    # with each stack's reason listing every other one and each orientation compared with all).
    small, large = (_lines_executed(lambda n=n: group_series(make(n))) for n in (1000, 2000))
    assert large / small < 2.3, (small, large)
