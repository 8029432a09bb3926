"""Siemens MOSAIC images: one stored image holding the slices of a volume as tiles.

A mosaic is recognised by the ImageType value MOSAIC and its Siemens CSA image header (private
creator "SIEMENS CSA HEADER", read with nibabel's CSA reader). NumberOfImagesInMosaic gives the
slice count N; the tiles fill a grid of ceil(sqrt(N)) by ceil(sqrt(N)), row by row, each
Rows/grid by Columns/grid pixels, in spatial order. SliceNormalVector gives the direction in which
the tiles follow each other.

ImagePositionPatient of a mosaic is that of the whole stored image, as if it were one large
slice centred where the first tile is centred: the first tile's own corner lies half the size
difference away, ``IPP + (Columns - tile columns)/2 * PixelSpacing[1] * row + (Rows - tile rows)/2
* PixelSpacing[0] * col`` (the correction dcm2niix and nibabel document). Tile k lies k slice
spacings (SpacingBetweenSlices, else SliceThickness) from the first along the CSA normal.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np

from .model import SliceHeader, as_vec3

MOSAIC_WORD = "MOSAIC"
CSA_CREATOR = "SIEMENS CSA HEADER"
NORMAL_TOLERANCE_DEG = 1.0
"""The CSA slice normal must be parallel to row x column within this angle (either sign)."""


class MosaicError(ValueError):
    """A mosaic that cannot be unpacked; the message says why."""


def is_mosaic(header: SliceHeader) -> bool:
    """A single stored image that says MOSAIC in its ImageType (not yet unpacked into tiles)."""
    return MOSAIC_WORD in header.image_type and header.mosaic_columns == 0 and header.number_of_frames <= 1


def read_csa(path: str) -> tuple[int, tuple[float, float, float]]:
    """NumberOfImagesInMosaic and SliceNormalVector from the file's CSA image header."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel.nicom warns that its DICOM *readers* are experimental
            from nibabel.nicom import csareader
    except ImportError:
        raise MosaicError("Siemens MOSAIC image: reading its CSA header needs the package nibabel "
                          "(pip install nibabel)") from None
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    try:
        csa = csareader.get_csa_header(ds, "image")
    except Exception as err:  # nibabel raises several types on a damaged header
        raise MosaicError(f"Siemens MOSAIC image with an unreadable CSA header ({type(err).__name__}: {err})") from None
    if csa is None:
        raise MosaicError("ImageType says MOSAIC but there is no Siemens CSA image header, so the number "
                          "of tiles and the slice direction are unknown")
    n = csareader.get_n_mosaic(csa)
    normal = csareader.get_slice_normal(csa)
    if not n or normal is None:
        raise MosaicError("Siemens MOSAIC image whose CSA header lacks NumberOfImagesInMosaic or "
                          "SliceNormalVector")
    return int(n), as_vec3(normal)


def unpack(header: SliceHeader, n_images: int, normal_csa: tuple[float, float, float]) -> list[SliceHeader]:
    """One header per tile, in tile order, each with its own position (see the module text)."""
    grid = math.ceil(math.sqrt(n_images))
    if n_images < 1 or header.rows % grid or header.columns % grid:
        raise MosaicError(f"Siemens MOSAIC of {header.columns}x{header.rows} pixels cannot hold {n_images} tiles "
                          f"in a {grid}x{grid} grid")
    if not header.has_geometry:
        return [header]  # left out later, as every image that cannot be placed in space
    step = header.spacing_between_slices_mm or header.slice_thickness_mm
    if not step:
        raise MosaicError("Siemens MOSAIC without SpacingBetweenSlices or SliceThickness: the tiles cannot be "
                          "placed along the slice normal")
    pose = header.pose
    row, col = np.asarray(pose.row_cosines), np.asarray(pose.col_cosines)
    normal = np.asarray(normal_csa, float)
    normal /= np.linalg.norm(normal)
    if abs(float(normal @ np.cross(row, col))) < math.cos(math.radians(NORMAL_TOLERANCE_DEG)):
        raise MosaicError("Siemens MOSAIC whose CSA SliceNormalVector is not perpendicular to its "
                          "ImageOrientationPatient")
    tile_rows, tile_columns = header.rows // grid, header.columns // grid
    di, dj = header.pixel_steps_mm
    first = (np.asarray(pose.position_lps_mm)
             + (header.columns - tile_columns) / 2 * di * row
             + (header.rows - tile_rows) / 2 * dj * col)
    return [
        replace(
            header,
            frame=k,
            number_of_frames=n_images,
            rows=tile_rows,
            columns=tile_columns,
            mosaic_columns=grid,
            position_lps_mm=as_vec3(first + k * abs(step) * normal),
        )
        for k in range(n_images)
    ]


def tiles_of(image: np.ndarray, header: SliceHeader) -> np.ndarray:
    """The tiles of one stored mosaic image (rows x columns), shape (tiles, tile rows, tile columns)."""
    grid, r, c = header.mosaic_columns, header.rows, header.columns
    down = image.shape[0] // r
    tiles = image[: down * r, : grid * c].reshape(down, r, grid, c).swapaxes(1, 2).reshape(down * grid, r, c)
    return tiles[: header.number_of_frames]


def unpack_summary(slices: list[SliceHeader]) -> str | None:
    """The sentence saying how mosaic tiles became slices, or None when no slice is a tile."""
    tiles = [s for s in slices if s.mosaic_columns]
    if not tiles:
        return None
    first = tiles[0]
    files = len({s.path for s in tiles})
    return (f"Siemens MOSAIC: {len(tiles)} tiles of {first.columns}x{first.rows} pixels from "
            f"{files} mosaic image{'s' if files > 1 else ''} unpacked into slices (NumberOfImagesInMosaic "
            f"{first.number_of_frames} and the slice normal from the CSA header); the first tile's position is "
            "the mosaic's ImagePositionPatient moved by half the difference between mosaic and tile size, the "
            "others follow at the slice spacing along the normal")
