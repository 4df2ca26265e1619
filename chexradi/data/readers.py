"""Reading chest radiographs: PNG/JPEG (8/16-bit, grey or RGB), DICOM, NRRD and NIfTI.

Public functions
----------------
read_radiograph(path) -> (image, spacing)
    float64 where higher means denser (brighter, MONOCHROME2 convention), and the
    pixel spacing (row, column) in mm.
image_shape_and_spacing(path) -> (shape, spacing)
    The same facts from the header only, without decoding the pixels.
looks_complete(path) -> bool
    A cheap check (no decoding) that a PNG, JPEG or uncompressed DICOM file is not cut
    short: False means "possibly truncated, decode it to be sure".

NRRD (``.nrrd``, ``.nhdr``) and NIfTI (``.nii``, ``.nii.gz``) are read with SimpleITK,
recognised by the end of the file name. A 2-D image, or a 3-D image with a single
slice (size 1 along any axis), gives a 2-D ``(rows, columns)`` array in the stored
index order (the direction matrix is not applied), intensities as stored (no
windowing). A true volume (more than one slice) is refused: a radiograph is 2-D.
SimpleITK orders size and spacing ``(x, y[, z])`` = ``(column, row[, slice])``; the
spacing returned here is in numpy order ``(row, column)``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

__all__ = ["read_radiograph", "image_shape_and_spacing", "looks_complete", "PathLike"]

logger = logging.getLogger("chexradi.data.readers")

PathLike = Union[str, "os.PathLike[str]"]

_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
# Read with SimpleITK; matched against the end of the lower-cased file name (".nii.gz").
_ITK_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz")
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
            f"{p} is a directory, not an image file; pass one PNG, JPEG, DICOM, NRRD or NIfTI file inside it."
        )
    return p


def _is_itk(p: Path) -> bool:
    return p.name.lower().endswith(_ITK_SUFFIXES)


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
            f"Cannot read {p}: not an image PIL recognises. Pass a PNG, JPEG, DICOM, NRRD (.nrrd/.nhdr) or NIfTI "
            "(.nii/.nii.gz) file (DICOM files without the .dcm suffix must carry the 'DICM' preamble)."
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
        if getattr(ts, "is_compressed", True):
            fix = ("For compressed DICOM install a decoder (pip install pylibjpeg pylibjpeg-libjpeg "
                   "pylibjpeg-openjpeg) or decompress the file first.")
        else:  # uncompressed: nothing to install; the pixel data are short or damaged
            fix = "The file may be truncated or corrupt (an interrupted copy?); copy or export it again."
        raise ValueError(f"Cannot decode the pixel data of {p} (transfer syntax {ts}): {exc}. {fix}") from exc
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


def _itk_plane(p: Path, size: tuple[int, ...], spacing: tuple[float, ...],
               n_components: int, complex_pixels: bool) -> tuple[tuple[int, ...], tuple[int, int], tuple[float, float]]:
    """Which SimpleITK axes to keep for a 2-D radiograph, checked from the header alone.

    Returns the numpy axes to squeeze away (scalar part of the array, whose axes are the
    reverse of SimpleITK's), the shape (rows, columns) and the spacing (row, column).
    Size-1 axes are dropped from the last SimpleITK axis (z) backwards until two remain;
    more than two axes longer than 1 is a volume and raises ``ValueError``.
    """
    if complex_pixels:
        raise ValueError(f"{p}: complex pixel values; a radiograph must hold real intensities.")
    if n_components not in (1, 2, 3, 4):
        raise ValueError(
            f"{p}: pixels with {n_components} components; expected grey (1), grey+alpha (2), RGB (3) or RGBA (4)."
        )
    if len(size) < 2:
        raise ValueError(f"{p}: a {len(size)}-D image of size {tuple(int(v) for v in size)}; a radiograph must be 2-D.")
    keep = list(range(len(size)))
    for axis in reversed(range(len(size))):
        if len(keep) <= 2:
            break
        if size[axis] == 1:
            keep.remove(axis)
    if len(keep) != 2:
        raise ValueError(
            f"{p}: image of size {tuple(int(v) for v in size)} (SimpleITK x, y, z order) is a "
            f"{len(size)}-D volume with more than one slice; a radiograph must be 2-D. Pick a slice first "
            "(e.g. SimpleITK: image[:, :, k]) and save it as its own file."
        )
    col_axis, row_axis = keep
    shape = (int(size[row_axis]), int(size[col_axis]))
    sp = _valid_spacing((spacing[row_axis], spacing[col_axis]))
    if sp is None:
        logger.warning("%s: ignoring invalid spacing %s; using 1.0 mm", p, tuple(spacing))
        sp = (1.0, 1.0)
    dropped = tuple(len(size) - 1 - a for a in range(len(size)) if a not in keep)
    return dropped, shape, sp


def _itk_complex_ids() -> set[int]:
    import SimpleITK as sitk

    return {getattr(sitk, n) for n in ("sitkComplexFloat32", "sitkComplexFloat64") if hasattr(sitk, n)}


def _itk_header(p: Path) -> tuple[tuple[int, int], tuple[float, float]]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"Cannot read the header of {p} with SimpleITK: {_itk_message(exc)}.") from exc
    _, shape, sp = _itk_plane(p, tuple(reader.GetSize()), tuple(reader.GetSpacing()),
                              int(reader.GetNumberOfComponents()), reader.GetPixelID() in _itk_complex_ids())
    return shape, sp


def _itk_message(exc: Exception) -> str:
    """The useful last line of an ITK exception (the rest is a C++ source location)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def _read_itk(p: Path) -> tuple[np.ndarray, tuple[float, float]]:
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise ValueError(
            f"Cannot read {p} with SimpleITK: {_itk_message(exc)}. The file may be truncated or corrupt "
            "(a .nhdr header also needs its data file next to it)."
        ) from exc
    n_comp = int(img.GetNumberOfComponentsPerPixel())
    dropped, shape, sp = _itk_plane(p, tuple(img.GetSize()), tuple(img.GetSpacing()), n_comp,
                                    img.GetPixelID() in _itk_complex_ids())
    arr = sitk.GetArrayFromImage(img)  # (z, y, x[, components])
    arr = np.squeeze(arr, axis=dropped) if dropped else arr
    if n_comp > 1:
        arr = _to_grey(arr, p)
    elif arr.ndim == 3:  # a one-component vector image keeps a trailing axis
        arr = arr[..., 0]
    if arr.shape != shape:
        raise ValueError(f"{p}: expected a 2-D image of shape {shape}, got pixel data of shape {arr.shape}.")
    image = np.asarray(arr, dtype=np.float64)
    if p.name.lower().endswith((".nii", ".nii.gz")) and np.issubdtype(arr.dtype, np.floating):
        _check_finite_count(_nifti_nonfinite(p), image.size, p)
    return image, sp


# NIfTI datatype codes of real floating-point pixels and their numpy types.
_NIFTI_FLOATS = {16: "f4", 64: "f8"}


def _nifti_nonfinite(p: Path) -> int:
    """Number of NaN/infinite values in the float pixel data of a NIfTI-1/-2 file, counted from the raw bytes.

    SimpleITK's NIfTI reader (niftilib) replaces non-finite floats with 0 without a word, so
    they cannot be seen in the array it returns.
    """
    import gzip
    import struct

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError):
        return 0  # SimpleITK read it; nothing more to say
    for endian in ("<", ">"):
        size = struct.unpack(endian + "i", data[:4])[0] if len(data) >= 348 else 0
        if size == 348:  # NIfTI-1: datatype at byte 70, vox_offset (float32) at 108
            code = struct.unpack(endian + "h", data[70:72])[0]
            offset = int(struct.unpack(endian + "f", data[108:112])[0])
        elif size == 540 and len(data) >= 540:  # NIfTI-2: datatype at 12, vox_offset (int64) at 168
            code = struct.unpack(endian + "h", data[12:14])[0]
            offset = int(struct.unpack(endian + "q", data[168:176])[0])
        else:
            continue
        kind = _NIFTI_FLOATS.get(code)
        if kind is None or not 0 < offset < len(data):
            return 0
        width = int(kind[1])
        body = data[offset: offset + (len(data) - offset) // width * width]
        return int((~np.isfinite(np.frombuffer(body, dtype=endian + kind))).sum())
    return 0


def _check_finite(image: np.ndarray, p: Path) -> np.ndarray:
    _check_finite_count(int((~np.isfinite(image)).sum()), image.size, p)
    return image


def _check_finite_count(n_bad: int, n: int, p: Path) -> None:
    if n_bad:
        raise ValueError(
            f"{p}: {n_bad} of {n} pixel(s) are NaN or infinite; a radiograph needs finite "
            "intensities. Replace them (e.g. numpy.nan_to_num) and save the file again."
        )


def read_radiograph(path: PathLike) -> tuple[np.ndarray, tuple[float, float]]:
    """Read a chest radiograph as a float64 2-D array and its pixel spacing.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG or JPEG (8 or 16 bit; RGB is converted to grey by luminance with a
        logged note), a DICOM file (recognised by a ``.dcm``/``.dicom`` suffix or
        by its ``DICM`` preamble), or an NRRD (``.nrrd``/``.nhdr``) or NIfTI
        (``.nii``/``.nii.gz``) file read with SimpleITK: 2-D, or 3-D with one slice
        (size 1 along any axis); multi-component (RGB) pixels are converted to grey
        by the same luminance weights as PNG.

    Returns
    -------
    image : numpy.ndarray
        float64, shape ``(rows, columns)``; higher values are denser (brighter). For
        DICOM, ``RescaleSlope``/``RescaleIntercept`` are applied and MONOCHROME1
        images are inverted by mirroring the representable range of the stored
        values (``(2**BitsStored - 1) - value`` for unsigned data without rescale).
        NRRD/NIfTI intensities are returned as stored (higher = denser, as for
        MONOCHROME2), in the stored index order (the direction matrix is not applied).
    spacing : tuple of float
        Pixel spacing in mm in numpy order (row, column): DICOM ``PixelSpacing``,
        else ``ImagerPixelSpacing``, else ``(1.0, 1.0)``. PNG/JPEG carry no
        reliable spacing: ``(1.0, 1.0)``. NRRD/NIfTI: the image spacing, reordered
        from SimpleITK's ``(x, y)`` to ``(row, column)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a directory, cannot be decoded, is a DICOM file without pixel
        data or with several frames, is not 2-D (an NRRD/NIfTI volume with more than
        one slice), or holds NaN or infinite pixel values (any format).
    """
    p = _check_file(path)
    if _is_itk(p):
        image, spacing = _read_itk(p)
    elif _is_dicom(p):
        image, spacing = _read_dicom(p)
    else:
        image, spacing = _read_pil(p), (1.0, 1.0)
    return _check_finite(image, p), spacing


def image_shape_and_spacing(p: Path) -> tuple[tuple[int, int], tuple[float, float]]:
    """Shape (rows, columns) and spacing (row, column) in mm of an image file, without decoding its pixels.

    NRRD/NIfTI headers are read with ``SimpleITK.ImageFileReader.ReadImageInformation``
    and follow the same single-slice rule and errors as :func:`read_radiograph` (a
    missing file raises ``FileNotFoundError``). NaN pixels are not detected here.
    """
    if _is_itk(Path(os.fspath(p))):
        return _itk_header(_check_file(p))
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


# PNG ends with an empty IEND chunk (length 0, type, CRC); JPEG with the EOI marker.
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_MAGIC = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_TAIL = 4096  # bytes searched for EOI (a few writers pad or append data after it)


def looks_complete(path: PathLike) -> bool:
    """Whether an image file looks complete, judged from its size and last bytes only (no decoding).

    PNG: ends with the IEND chunk. JPEG: an EOI marker in its last 4 KiB. Uncompressed
    DICOM: at least ``Rows x Columns x SamplesPerPixel x BitsAllocated / 8 x frames``
    bytes follow the header. Other formats (compressed DICOM, NRRD, NIfTI) are
    reported complete. False means *possibly* truncated (e.g. an interrupted copy or
    download): decode the file (:func:`read_radiograph`) to be sure, since a valid
    file may carry trailing data. A file that cannot be opened is reported incomplete.
    """
    p = Path(os.fspath(path))
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(132)
            if head.startswith(_PNG_MAGIC):
                fh.seek(max(0, size - len(_PNG_END)))
                return fh.read() == _PNG_END
            if head.startswith(_JPEG_MAGIC):
                fh.seek(max(0, size - _JPEG_TAIL))
                return _JPEG_EOI in fh.read()
    except OSError:
        return False
    if _is_itk(p) or not (p.suffix.lower() in _DICOM_SUFFIXES or head[128:132] == b"DICM"):
        return True
    return _dicom_complete(p, size)


def _dicom_complete(p: Path, size: int) -> bool:
    import pydicom

    try:
        with open(p, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            header_end = fh.tell()
    except Exception:  # noqa: BLE001 - pydicom raises many types on a damaged file
        return False
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and getattr(ts, "is_compressed", False):
        return True  # encapsulated pixel data: no fixed length to check
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        expected = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * frames
                    * int(ds.BitsAllocated) // 8)
    except (AttributeError, TypeError, ValueError):
        return True  # not an image the size can be computed for; the decoder will tell
    return size - header_end >= expected
