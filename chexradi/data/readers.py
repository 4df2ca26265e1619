"""Reading chest radiographs: PNG/JPEG (8/16-bit, grey or RGB) and DICOM.

Public functions
----------------
read_radiograph(path) -> (image, spacing)
    float64 where higher means denser (brighter, MONOCHROME2 convention), and the
    pixel spacing (row, column) in mm.
image_shape_and_spacing(path) -> (shape, spacing)
    The same facts from the header only, without decoding the pixels.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

__all__ = ["read_radiograph", "image_shape_and_spacing", "PathLike"]

logger = logging.getLogger("chexradi.data.readers")

PathLike = Union[str, "os.PathLike[str]"]

_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
# ITU-R BT.601 luma, the weights PIL's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114])

# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _check_file(path: PathLike) -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(
            f"Radiograph file not found: {p}. Check the path (relative paths are taken from {Path.cwd()})."
        )
    if p.is_dir():
        raise ValueError(
            f"{p} is a directory, not an image file; pass one PNG, JPEG or DICOM file inside it."
        )
    return p


def _is_dicom(p: Path) -> bool:
    if p.suffix.lower() in _DICOM_SUFFIXES:
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise ValueError(f"Cannot read {p}: {exc}. Check the file permissions.") from exc
    return len(head) == 132 and head[128:132] == b"DICM"


def _to_grey(arr: np.ndarray, source: Path) -> np.ndarray:
    """(H, W, C) colour -> (H, W) grey by luminance, with a logged note."""
    if arr.shape[-1] in (2, 4):  # grey+alpha or RGBA: drop alpha
        arr = arr[..., :-1]
    if arr.shape[-1] == 1:
        return arr[..., 0]
    if arr.shape[-1] != 3:
        raise ValueError(f"{source}: cannot convert an image with {arr.shape[-1]} channels to grey.")
    identical = bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]))
    logger.info(
        "%s: RGB image converted to grey by luminance (0.299 R + 0.587 G + 0.114 B)%s",
        source,
        "; its three channels are identical" if identical else "; its channels differ (a colour image?)",
    )
    return arr.astype(np.float64) @ _LUMA


def _read_pil(p: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB" if im.mode != "1" else "L")
            arr = np.asarray(im)
    except UnidentifiedImageError as exc:
        raise ValueError(
            f"Cannot read {p}: not an image PIL recognises. Pass a PNG, JPEG or DICOM file "
            "(DICOM files without the .dcm suffix must carry the 'DICM' preamble)."
        ) from exc
    except OSError as exc:
        raise ValueError(f"Cannot read {p}: {exc}. The file may be truncated or corrupt; re-export it.") from exc
    if arr.ndim == 3:
        arr = _to_grey(arr, p)
    if arr.ndim != 2:
        raise ValueError(f"{p}: expected a 2-D image, got shape {arr.shape}.")
    return arr.astype(np.float64)


def _valid_spacing(value: object) -> Optional[tuple[float, float]]:
    try:
        sp = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(sp) != 2 or not all(np.isfinite(s) and s > 0 for s in sp):
        return None
    return (sp[0], sp[1])


def _dicom_spacing(ds: object, p: Path) -> tuple[float, float]:
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        if tag in ds:  # type: ignore[operator]
            sp = _valid_spacing(getattr(ds, tag))
            if sp is not None:
                return sp
            logger.warning("%s: ignoring invalid %s %s", p, tag, getattr(ds, tag))
    logger.info("%s: no valid PixelSpacing/ImagerPixelSpacing; using 1.0 mm", p)
    return (1.0, 1.0)


def _read_dicom(p: Path) -> tuple[np.ndarray, tuple[float, float]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(p)
    except InvalidDicomError as exc:
        raise ValueError(
            f"Cannot read {p} as DICOM: {exc}. If it is a PNG/JPEG, give it the matching suffix."
        ) from exc
    except Exception as exc:  # pydicom raises many types on corrupt files
        raise ValueError(f"Cannot read {p} as DICOM ({type(exc).__name__}: {exc}); the file may be corrupt.") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ValueError(
            f"{p} is a DICOM file without pixel data (e.g. a structured report or a DICOMDIR); "
            "pass the DICOM file of the image itself."
        )
    try:
        raw = ds.pixel_array
    except Exception as exc:  # missing decoder, bad length, ...
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ValueError(
            f"Cannot decode the pixel data of {p} (transfer syntax {ts}): {exc}. For compressed DICOM install "
            "a decoder (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg) or decompress the file first."
        ) from exc
    spp = int(ds.get("SamplesPerPixel", 1))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(f"{p} holds {frames} frames; expected a single radiograph. Split the frames first.")
    if spp > 1:
        if str(ds.get("PhotometricInterpretation", "")).upper() not in ("RGB", ""):
            from pydicom.pixels import convert_color_space

            raw = convert_color_space(raw, ds.PhotometricInterpretation, "RGB")
        image = _to_grey(np.asarray(raw), p)
    else:
        image = np.asarray(raw, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"{p}: expected a 2-D radiograph, got pixel data of shape {image.shape}.")

    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    image = image * slope + intercept

    if spp == 1 and str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        # MONOCHROME1: low values are bright. Mirror the representable range of the stored
        # values (after rescale) so that higher = denser, as in MONOCHROME2.
        bits = int(ds.get("BitsStored", 16))
        if int(ds.get("PixelRepresentation", 0)) == 1:
            lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        else:
            lo, hi = 0, 2**bits - 1
        lo_r, hi_r = sorted((lo * slope + intercept, hi * slope + intercept))
        image = (lo_r + hi_r) - image
    return image, _dicom_spacing(ds, p)


def read_radiograph(path: PathLike) -> tuple[np.ndarray, tuple[float, float]]:
    """Read a chest radiograph as a float64 2-D array and its pixel spacing.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG or JPEG (8 or 16 bit; RGB is converted to grey by luminance with a
        logged note) or a DICOM file (recognised by a ``.dcm``/``.dicom`` suffix or
        by its ``DICM`` preamble).

    Returns
    -------
    image : numpy.ndarray
        float64, shape ``(rows, columns)``; higher values are denser (brighter). For
        DICOM, ``RescaleSlope``/``RescaleIntercept`` are applied and MONOCHROME1
        images are inverted by mirroring the representable range of the stored
        values (``(2**BitsStored - 1) - value`` for unsigned data without rescale).
    spacing : tuple of float
        Pixel spacing in mm in numpy order (row, column): DICOM ``PixelSpacing``,
        else ``ImagerPixelSpacing``, else ``(1.0, 1.0)``. PNG/JPEG carry no
        reliable spacing: ``(1.0, 1.0)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a directory, cannot be decoded, is a DICOM file without pixel
        data or with several frames, or is not 2-D.
    """
    p = _check_file(path)
    if _is_dicom(p):
        return _read_dicom(p)
    return _read_pil(p), (1.0, 1.0)


def image_shape_and_spacing(p: Path) -> tuple[tuple[int, int], tuple[float, float]]:
    """Shape (rows, columns) and spacing (row, column) in mm of an image file, without decoding its pixels."""
    if _is_dicom(p):
        import pydicom

        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception as exc:
            raise ValueError(f"Cannot read the DICOM header of {p}: {exc}.") from exc
        if "Rows" not in ds or "Columns" not in ds:
            raise ValueError(f"{p} is a DICOM file without an image (no Rows/Columns).")
        return (int(ds.Rows), int(ds.Columns)), _dicom_spacing(ds, p)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"Cannot read {p} as an image: {exc}.") from exc
    return (h, w), (1.0, 1.0)
