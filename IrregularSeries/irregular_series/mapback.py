"""A volume mapped back onto the acquired slices: for every pixel of every slice, the value of
the volume's voxel nearest to that pixel's DICOM position (labels drawn on a hardened volume,
carried back to the images they came from).

Nearest neighbour, because the values are labels: a mixture of two labels means nothing. A pixel
whose nearest voxel centre is outside the volume (more than half a voxel beyond its first or last
centre along any axis) gets the background value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .geometry import pixel_to_lps
from .model import SliceHeader

LpsToIndex = Callable[[np.ndarray], np.ndarray]
"""Maps LPS points (M, 3) in mm to continuous (i, j, k) indices (M, 3) of the volume."""


def nearest_on_slices(
    volume_kji: np.ndarray,
    slices: Sequence[SliceHeader],
    lps_to_index: np.ndarray | LpsToIndex,
    *,
    background: float = 0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``volume_kji`` (indexed [k, j, i]) sampled at every pixel of ``slices``, nearest voxel:
    an array (N, rows, columns) of the volume's type, [n, row, column] for pixel (column, row)
    of slice n. ``lps_to_index`` is the 4 x 4 matrix from LPS mm to the volume's (i, j, k), or,
    where the two are not related by an affine map (a non-linear transform between them), a
    function mapping points. ``progress(slices_done, slice_count)`` is called after each slice.
    """
    rows, columns = slices[0].rows, slices[0].columns
    out = np.full((len(slices), rows, columns), background, volume_kji.dtype)
    j, i = np.mgrid[0:rows, 0:columns]
    pixels = np.stack([i, j, np.zeros_like(i), np.ones_like(i)], axis=-1).reshape(-1, 4).astype(float)
    for n, (s, to_lps) in enumerate(zip(slices, pixel_to_lps(slices))):
        if (s.rows, s.columns) != (rows, columns):
            raise ValueError(f"{s.label} is {s.rows} x {s.columns} pixels, the first slice {rows} x {columns}")
        if isinstance(lps_to_index, np.ndarray):
            index = pixels @ (lps_to_index @ to_lps)[:3].T
        else:
            index = lps_to_index(pixels @ to_lps[:3].T)
        # floor(x + 0.5), not rint: a pixel exactly between two voxels always takes the upper one.
        nearest = np.floor(index + 0.5).astype(np.int64)
        size = np.array(volume_kji.shape[::-1])
        inside = np.all((nearest >= 0) & (nearest < size), axis=1)
        i_in, j_in, k_in = nearest[inside].T
        out[n].reshape(-1)[inside] = volume_kji[k_in, j_in, i_in]
        if progress is not None:
            progress(n + 1, len(slices))
    return out
