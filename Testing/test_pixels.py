"""Pixel loading: rescale, MONOCHROME1, unused bits, multi-frame, fast path vs pydicom, decoders.

Every file here is a real DICOM file written with pydicom; expected values come from pydicom's own
``pixel_array`` (times slope plus intercept) or are written out by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

import irregular_series
from irregular_series import pixels as pixels_module
from irregular_series.headers import scan
from irregular_series.model import SliceHeader
from irregular_series.pixels import (
    PixelDecodeError,
    decoder_available,
    load_pixels,
    output_dtype,
    rescaled_range,
    value_range,
)
from irregular_series.testing.synthetic import save_dataset

PYDICOM3 = int(pydicom.__version__.split(".")[0]) >= 3
JPEG2000_PART2_LOSSLESS = "1.2.840.10008.1.2.4.92"
RNG = np.random.default_rng(7)


# --- writing and reading real files ------------------------------------------------------------


def write_image(
    path: Path,
    pixels: np.ndarray,
    *,
    syntax: str = ExplicitVRLittleEndian,
    bits_stored: int | None = None,
    slope: float | None = None,
    intercept: float | None = None,
    photometric: str = "MONOCHROME2",
    trailing_padding: bool = False,
) -> Path:
    """Write ``pixels`` (rows, columns) or (frames, rows, columns) as stored values."""
    frames = pixels if pixels.ndim == 3 else pixels[None]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.Rows, ds.Columns = frames.shape[1:]
    if pixels.ndim == 3:
        ds.NumberOfFrames = len(frames)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    byte_order = ">" if syntax == ExplicitVRBigEndian else "<"
    ds.PixelData = frames.astype(frames.dtype.newbyteorder(byte_order)).tobytes()
    if trailing_padding:
        ds.DataSetTrailingPadding = b"\0" * 6  # (FFFC,FFFC), written after Pixel Data
    if syntax == RLELossless:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.compress(RLELossless)
    elif syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian):
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        raise ValueError(f"write_image does not encode {syntax}")
    save(ds, path)
    return path


def save(ds: Dataset, path: Path) -> None:
    save_dataset(ds, path, ds.file_meta.TransferSyntaxUID)


def header_of(path: Path, frame: int = 0) -> SliceHeader:
    """The SliceHeader the header scan would make, read here with pydicom."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return SliceHeader(
        path=str(path),
        frame=frame,
        number_of_frames=int(ds.get("NumberOfFrames", 1) or 1),
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        rescale_slope=float(ds.get("RescaleSlope", 1.0)),
        rescale_intercept=float(ds.get("RescaleIntercept", 0.0)),
        photometric_interpretation=str(ds.PhotometricInterpretation),
        samples_per_pixel=int(ds.SamplesPerPixel),
        bits_allocated=int(ds.BitsAllocated),
        bits_stored=int(ds.BitsStored),
        pixel_representation=int(ds.PixelRepresentation),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
    )


def expected(header: SliceHeader, dtype: np.dtype) -> np.ndarray:
    """pydicom's pixel_array * slope + intercept, MONOCHROME1 inverted within the rescaled range."""
    frames = pydicom.dcmread(header.path).pixel_array.reshape(-1, header.rows, header.columns)
    values = frames[header.frame] * np.float64(header.rescale_slope) + header.rescale_intercept
    if header.photometric_interpretation == "MONOCHROME1":
        values = sum(rescaled_range(header)) - values
    return values.astype(dtype)


def stored(dtype: str, lo: int, hi: int, shape=(6, 7)) -> np.ndarray:
    """Random stored values covering [lo, hi] (both ends included)."""
    values = RNG.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    values.flat[:2] = lo, hi
    return values


def header(**fields) -> SliceHeader:
    """A SliceHeader with no file behind it (for output_dtype)."""
    base = dict(path="x.dcm", frame=0, number_of_frames=1, sop_instance_uid="1",
                sop_class_uid="1", series_instance_uid="1", rows=2, columns=2)
    return SliceHeader(**{**base, **fields})


# --- values match pydicom ------------------------------------------------------------------------

CASES = {
    "explicit-u16": dict(pixels=("uint16", 0, 65535)),
    "implicit-s16-ct": dict(pixels=("int16", -2000, 3000), syntax=ImplicitVRLittleEndian,
                            slope=1, intercept=-1024),
    "bigendian-s16": dict(pixels=("int16", -32768, 32767), syntax=ExplicitVRBigEndian),
    "bigendian-u8": dict(pixels=("uint8", 0, 255), syntax=ExplicitVRBigEndian, slope=2,
                         intercept=-3),
    "u12-in-16": dict(pixels=("uint16", 0, 4095), bits_stored=12, slope=1, intercept=-1024),
    "s12-in-16": dict(pixels=("int16", -2048, 2047), bits_stored=12),
    "u8-odd-length": dict(pixels=("uint8", 0, 255), shape=(3, 5)),
    "s8-implicit": dict(pixels=("int8", -128, 127), syntax=ImplicitVRLittleEndian, slope=3,
                        intercept=1),
    "s32": dict(pixels=("int32", -(2**31), 2**31 - 1)),
    "u16-fractional": dict(pixels=("uint16", 0, 4095), bits_stored=12, slope=0.25,
                           intercept=-7.5),
    "negative-slope": dict(pixels=("int16", -500, 500), slope=-2, intercept=10),
    "monochrome1": dict(pixels=("uint16", 0, 4095), bits_stored=12, slope=1, intercept=-1024,
                        photometric="MONOCHROME1"),
    "monochrome1-u8": dict(pixels=("uint8", 0, 255), photometric="MONOCHROME1"),
    # Pixel Data is not the last element: its offset comes from pydicom's parser.
    "trailing-padding": dict(pixels=("int16", -100, 100), trailing_padding=True),
    "rle-s16": dict(pixels=("int16", -1024, 3071), syntax=RLELossless, slope=1, intercept=5),
}


@pytest.mark.parametrize("case", CASES)
def test_values_match_pydicom(tmp_path, case):
    spec = dict(CASES[case])
    dtype, lo, hi = spec.pop("pixels")
    pixels = stored(dtype, lo, hi, spec.pop("shape", (6, 7)))
    headers = [header_of(write_image(tmp_path / f"{i}.dcm", pixels, **spec)) for i in range(3)]

    volume = load_pixels(headers)

    assert volume.shape == (3, *pixels.shape)
    for k, h in enumerate(headers):
        np.testing.assert_array_equal(volume[k], expected(h, volume.dtype))


def test_monochrome1_reads_as_monochrome2(tmp_path):
    pixels = np.array([[0, 1, 4094, 4095]], dtype=np.uint16)
    mono1 = write_image(tmp_path / "m1.dcm", pixels, bits_stored=12, slope=1, intercept=-1024,
                        photometric="MONOCHROME1")
    volume = load_pixels([header_of(mono1)])
    # rescaled range [-1024, 3071]: v' = 2047 - v
    np.testing.assert_array_equal(volume[0], [[3071, 3070, -1023, -1024]])


def test_per_slice_rescale(tmp_path):
    pixels = stored("uint16", 0, 4095, (4, 5))
    fractional = [header_of(write_image(tmp_path / f"f{i}.dcm", pixels, bits_stored=12,
                                        slope=s, intercept=b))
                  for i, (s, b) in enumerate([(1, -1024), (0.5, 0), (2.5, -3.25)])]
    integer = [header_of(write_image(tmp_path / f"i{i}.dcm", pixels, bits_stored=12,
                                     slope=s, intercept=b))
               for i, (s, b) in enumerate([(1, -1024), (1, 0), (20, -40000)])]

    for headers, dtype in ((fractional, np.float32), (integer, np.int32)):
        volume = load_pixels(headers)
        assert volume.dtype == dtype
        for k, h in enumerate(headers):
            np.testing.assert_array_equal(volume[k], expected(h, dtype))


# --- the output type rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, dtype",
    [
        (dict(bits_allocated=8, bits_stored=8), "uint8"),
        (dict(bits_allocated=8, bits_stored=8, pixel_representation=1), "int8"),
        (dict(bits_allocated=8, bits_stored=7, pixel_representation=1, rescale_intercept=-64),
         "int8"),
        (dict(bits_stored=12), "uint16"),
        (dict(bits_stored=12, rescale_intercept=-1024), "int16"),
        (dict(bits_stored=12, rescale_intercept=-1024, photometric_interpretation="MONOCHROME1"),
         "int16"),
        (dict(bits_stored=16, pixel_representation=1), "int16"),
        (dict(bits_stored=16, rescale_intercept=-1024), "int32"),
        (dict(bits_stored=16, rescale_slope=-1), "int32"),
        (dict(bits_stored=12, rescale_slope=0.5), "float32"),
        (dict(bits_stored=12, rescale_intercept=0.5), "float32"),
        (dict(bits_allocated=32, bits_stored=32, pixel_representation=1), "int32"),
        (dict(bits_allocated=32, bits_stored=32), "float64"),
        (dict(bits_allocated=32, bits_stored=32, rescale_slope=0.001), "float64"),
    ],
)
def test_output_dtype_rule(fields, dtype):
    assert output_dtype([header(**fields)]) == np.dtype(dtype)


def test_output_dtype_takes_union_of_slices():
    ct = header(bits_stored=12, rescale_intercept=-1024)  # [-1024, 3071]
    mr = header(bits_stored=16)  # [0, 65535]
    assert output_dtype([ct]) == np.int16
    assert output_dtype([mr]) == np.uint16
    assert output_dtype([ct, mr]) == np.int32
    assert output_dtype([ct, header(bits_stored=12, rescale_slope=0.5)]) == np.float32


# --- bits above BitsStored ------------------------------------------------------------------------

HIGH_BITS = np.array([[0xF001, 0x0FFF, 0x8800, 0x0800]], dtype=np.uint16)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_unused_high_bits_masked_or_sign_extended(tmp_path, syntax):
    """Bits 12-15 hold junk (as overlays once did): the fast and the pydicom path ignore them."""
    unsigned = write_image(tmp_path / "u.dcm", HIGH_BITS, syntax=syntax, bits_stored=12)
    signed = write_image(tmp_path / "s.dcm", HIGH_BITS.view(np.int16), syntax=syntax,
                         bits_stored=12)
    np.testing.assert_array_equal(load_pixels([header_of(unsigned)])[0],
                                  [[0x001, 0xFFF, 0x800, 0x800]])
    np.testing.assert_array_equal(load_pixels([header_of(signed)])[0], [[1, -1, -2048, -2048]])


# --- multi-frame, fast path against pydicom -------------------------------------------------------


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless])
def test_multiframe_frames_out_of_order(tmp_path, syntax):
    frames = stored("int16", -1000, 1000, (5, 6, 7))
    path = write_image(tmp_path / "mf.dcm", frames, syntax=syntax, slope=2, intercept=-1)
    single = write_image(tmp_path / "single.dcm", frames[2])
    order = [3, 0, 4, 1]
    headers = [header_of(path, f) for f in order[:2]] + [header_of(single)]
    headers += [header_of(path, f) for f in order[2:]]

    volume = load_pixels(headers, workers=2)

    want = [frames[f] * 2 - 1 for f in order[:2]] + [frames[2]]
    want += [frames[f] * 2 - 1 for f in order[2:]]
    np.testing.assert_array_equal(volume, np.stack(want))


def test_real_enhanced_multiframe_frames_out_of_order(realdata):
    """Siemens XA30 Enhanced MR, 96 frames in one file: frames read from disk match pydicom."""
    folder = realdata / "mr_enhanced_multiframe" / "xa30" / "5_anat-T1w_acq-tfl"
    path = next(folder.glob("*.dcm"))
    order = [95, 0, 47, 3, 94]
    headers = [header_of(path, f) for f in order]
    assert headers[0].number_of_frames == 96
    volume = load_pixels(headers)
    frames = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(volume, frames[order])


def test_refuses_frame_outside_the_object(tmp_path):
    path = write_image(tmp_path / "mf.dcm", np.zeros((2, 3, 3), np.int16))
    with pytest.raises(ValueError, match="frame 2 of a 2-frame object"):
        load_pixels([header_of(path, 2)])


@pytest.mark.parametrize(
    "spec",
    [
        dict(pixels=("int16", -1024, 3071), slope=1, intercept=-1024),
        dict(pixels=("uint16", 0, 4095), bits_stored=12, slope=0.75, intercept=2),
        dict(pixels=("uint8", 0, 255), photometric="MONOCHROME1"),
    ],
    ids=["int", "float", "mono1-u8"],
)
def test_fast_path_equals_pydicom_path(tmp_path, spec):
    """The same stored values in every syntax: read from disk or decoded by pydicom, the same."""
    spec = dict(spec)
    dtype, lo, hi = spec.pop("pixels")
    pixels = stored(dtype, lo, hi, (3, 8, 9))
    volumes = {}
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                   RLELossless):
        headers = [header_of(write_image(tmp_path / f"{syntax}-{k}.dcm", pixels[k],
                                         syntax=syntax, **spec)) for k in range(3)]
        volumes[syntax] = load_pixels(headers)
    for syntax, volume in volumes.items():
        assert volume.dtype == volumes[ExplicitVRLittleEndian].dtype, syntax
        np.testing.assert_array_equal(volume, volumes[ExplicitVRLittleEndian], err_msg=syntax)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_the_fast_path_reads_where_the_scan_found_the_pixels(tmp_path, syntax, monkeypatch):
    """The header scan knows where the pixel values start; the reader goes there instead of
    looking again (and still looks when a header does not say, e.g. built from Slicer's database)."""
    pixels = stored("int16", -1024, 3071, (2, 8, 9))
    paths = [write_image(tmp_path / f"{k}.dcm", pixels[k], syntax=syntax) for k in range(2)]
    scanned = scan(paths).slices
    element_header = 12 if syntax == ExplicitVRLittleEndian else 8  # tag, (VR, reserved,) length
    for header in scanned:
        assert header.pixel_data_offset == Path(header.path).read_bytes().rfind(b"\xe0\x7f\x10\x00") + element_header
    expected = load_pixels(scanned)
    np.testing.assert_array_equal(load_pixels([dataclasses.replace(h, pixel_data_offset=None) for h in scanned]),
                                  expected)

    def no_search(*args):
        raise AssertionError("looked for the pixel data again")

    monkeypatch.setattr(pixels_module, "_pixel_data_offset", no_search)
    np.testing.assert_array_equal(load_pixels(scanned), expected)


def test_pixel_steps_are_pixel_spacing_the_other_way_round():
    header = SliceHeader(path="x", frame=0, number_of_frames=1, sop_instance_uid="1", sop_class_uid="2",
                         series_instance_uid="3", pixel_spacing_mm=(0.5, 0.25))
    assert header.pixel_steps_mm == (0.25, 0.5)  # (between columns, between rows)


def test_threads_give_the_same_array(tmp_path):
    pixels = stored("int16", -1024, 3071, (12, 16, 16))
    headers = [header_of(write_image(tmp_path / f"{k}.dcm", pixels[k], slope=1, intercept=k))
               for k in range(12)]
    one = load_pixels(headers, workers=1)
    many = load_pixels(headers, workers=4)
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(one, pixels + np.arange(12)[:, None, None])


# --- out, dtype and refusals ----------------------------------------------------------------------


def test_out_and_dtype(tmp_path):
    pixels = stored("uint16", 0, 4095, (4, 5))
    headers = [header_of(write_image(tmp_path / "a.dcm", pixels, bits_stored=12, slope=1,
                                     intercept=-1024))]
    out = np.full((1, 4, 5), 99, np.float32)
    assert load_pixels(headers, out=out) is out
    np.testing.assert_array_equal(out[0], pixels - 1024.0)

    wide = load_pixels(headers, dtype=np.int32)
    assert wide.dtype == np.int32
    np.testing.assert_array_equal(wide[0], pixels.astype(np.int32) - 1024)

    strided = np.zeros((1, 4, 10), np.int16)[:, :, ::2]  # not contiguous: no direct read
    load_pixels(headers, out=strided)
    np.testing.assert_array_equal(strided[0], pixels.astype(np.int32) - 1024)

    with pytest.raises(ValueError, match="does not fit uint16"):
        load_pixels(headers, dtype=np.uint16)
    with pytest.raises(ValueError, match="differs from out.dtype"):
        load_pixels(headers, dtype=np.int32, out=out)
    with pytest.raises(ValueError, match="shape"):
        load_pixels(headers, out=np.empty((2, 4, 5), np.int16))
    fractional = [header_of(write_image(tmp_path / "f.dcm", pixels, slope=0.5, intercept=0))]
    with pytest.raises(ValueError, match="not all integers"):
        load_pixels(fractional, dtype=np.int32)


def test_refuses_mixed_sizes_and_colour(tmp_path):
    small = header_of(write_image(tmp_path / "small.dcm", np.zeros((4, 4), np.int16)))
    large = header_of(write_image(tmp_path / "large.dcm", np.zeros((4, 5), np.int16)))
    with pytest.raises(ValueError, match="share rows and columns"):
        load_pixels([small, large])

    rgb = np.zeros((4, 4, 3), np.uint8)
    ds = pydicom.dcmread(tmp_path / "small.dcm")
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.PixelData = 7, 0, rgb.tobytes()
    save(ds, tmp_path / "rgb.dcm")
    with pytest.raises(ValueError, match="colour images are not supported"):
        load_pixels([header_of(tmp_path / "rgb.dcm")])


# --- compressed data and decoders -----------------------------------------------------------------


def test_decoder_available_for_native_and_rle():
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                   RLELossless):
        assert decoder_available(syntax) == (True, "")


def test_real_compressed_copies_decode_identically(realdata):
    """dicom2nifti's one series in RLE, JPEG Lossless, JPEG-LS and JPEG 2000: same pixels."""
    root = realdata / "dicom2nifti_edgecases" / "generic"
    volumes = {}
    for name in ("rle", "jpeg", "jpegls", "j2k"):
        headers = [header_of(p) for p in sorted((root / f"compressed_{name}" / "001").iterdir())]
        available, hint = decoder_available(headers[0].transfer_syntax_uid)
        if not available:
            pytest.skip(hint)
        volumes[name] = load_pixels(headers)
        for k, h in enumerate(headers):
            np.testing.assert_array_equal(volumes[name][k], expected(h, volumes[name].dtype))
    assert volumes["rle"].shape == (4, 256, 256)
    for name, volume in volumes.items():
        np.testing.assert_array_equal(volume, volumes["rle"], err_msg=name)


def test_syntax_without_any_pydicom_decoder(tmp_path):
    """JPEG 2000 Part 2 (multi-component) Lossless: neither pydicom 2.4 nor 3.0 decodes it.

    The file holds a real JPEG 2000 codestream (a Part 1 codestream is valid Part 2).
    """
    openjpeg = pytest.importorskip("openjpeg")
    pixels = stored("uint16", 0, 4095, (64, 64))  # 6 wavelet levels need 64 x 64
    path = write_image(tmp_path / "j2k-part2.dcm", pixels, bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([bytes(openjpeg.encode(pixels, bits_stored=12))])
    ds.file_meta.TransferSyntaxUID = JPEG2000_PART2_LOSSLESS
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    if PYDICOM3:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)

    available, hint = decoder_available(JPEG2000_PART2_LOSSLESS)
    assert not available
    assert "JPEG 2000 Part 2 Multi-component" in hint and "no decoder" in hint
    with pytest.raises(PixelDecodeError) as error:
        load_pixels([header_of(path)])
    assert str(path) in str(error.value)
    assert "JPEG 2000 Part 2 Multi-component" in str(error.value)


def write_jpegls(path: Path, pixels: np.ndarray) -> Path:
    """A JPEG-LS Lossless file, encoded with pyjpegls (it runs with pydicom 2.4 and 3)."""
    jpeg_ls = pytest.importorskip("jpeg_ls")
    write_image(path, pixels)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([bytes(jpeg_ls.encode(pixels))])
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    save(ds, path)
    return path


def test_jpegls_decodes(tmp_path):
    pixels = stored("uint16", 0, 4095, (8, 9))
    path = write_jpegls(tmp_path / "ls.dcm", pixels)
    available, hint = decoder_available(JPEGLSLossless)
    if not available:
        pytest.skip(hint)
    np.testing.assert_array_equal(load_pixels([header_of(path)])[0], pixels)


def site_packages_without(view: Path, distributions: list[str]) -> Path:
    """This environment's site-packages, as symlinks, minus the files of ``distributions``."""
    hidden = set()
    for name in distributions:
        try:
            hidden |= {f.parts[0] for f in metadata.distribution(name).files or ()}
        except metadata.PackageNotFoundError:
            continue
    view.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if entry.name not in hidden and not entry.name.endswith(".pth"):
            (view / entry.name).symlink_to(entry)
    return view


MISSING_DECODER_SCRIPT = """
import json, sys
from irregular_series.model import SliceHeader
from irregular_series.pixels import PixelDecodeError, decoder_available, load_pixels
header = SliceHeader(**json.loads(sys.argv[1]))
available, hint = decoder_available(header.transfer_syntax_uid)
try:
    load_pixels([header])
    error = None
except PixelDecodeError as exc:
    error = str(exc)
print(json.dumps({"available": available, "hint": hint, "error": error}))
"""


def test_missing_decoder_package_names_file_syntax_and_pip(tmp_path):
    """A Python whose site-packages lacks the JPEG-LS decoders (pyjpegls, pylibjpeg-libjpeg).

    Not a patch of pydicom: the same interpreter started (-S) on a copy of this environment's
    site-packages without those distributions, so pydicom finds them absent as it would after
    ``pip uninstall``.
    """
    path = write_jpegls(tmp_path / "ls.dcm", stored("uint16", 0, 4095, (8, 9)))
    site = site_packages_without(tmp_path / "site", ["pyjpegls", "pylibjpeg-libjpeg"])
    package_root = Path(irregular_series.__file__).resolve().parents[1]
    fields = dataclasses.asdict(header_of(path))
    run = subprocess.run(
        [sys.executable, "-S", "-c", MISSING_DECODER_SCRIPT, json.dumps(fields)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), str(site)])},
        capture_output=True, text=True, check=True,
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if result["available"]:
        pytest.skip("another JPEG-LS decoder (e.g. GDCM) is installed")
    assert "pip install pyjpegls" in result["hint"]
    assert result["error"] is not None
    for part in (str(path), "JPEG-LS Lossless", "pip install pyjpegls"):
        assert part in result["error"]


def test_value_range_is_the_lowest_and_highest_value_ignoring_nan_also_across_threads(monkeypatch):
    monkeypatch.setattr(pixels_module, "_PARALLEL_RANGE_BYTES", 1)  # a thread per few slices
    ints = np.arange(6 * 4 * 5, dtype=np.int16).reshape(6, 4, 5) - 7
    ints[4, 2, 3] = 999
    assert value_range(ints) == (-7.0, 999.0)
    floats = ints.astype(np.float32)
    floats[0] = np.nan  # a slice of NaN alone, and NaN beside values
    floats[5, 1, 1] = np.nan
    assert value_range(floats) == (float(floats[1].min()), 999.0)
    assert value_range(np.zeros((0, 4, 5), np.int16)) == (0.0, 0.0)
