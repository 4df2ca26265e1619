"""Loading images and masks for the radiomics engine.

Accepted inputs: a numpy array (2-D ``(y, x)`` or 3-D ``(z, y, x)``, with an
optional ``spacing`` in the same numpy order), a ``SimpleITK.Image``, or a path
to any file SimpleITK reads (NRRD, NIfTI, PNG, JPEG, single-file DICOM, MHA,
TIFF). Both engines receive the very same SimpleITK images, so ``engine="numba"``
and ``engine="pyradiomics"`` always see identical inputs. The one shortcut: a plain NRRD
file (the loop's images and masks) can be read as its array and geometry alone
(:func:`read_plain`), which the extractor uses for the numba engine when no SimpleITK
step is needed; the pixels are the same.

Colour images: a radiograph stored as RGB(A) whose channels are equal is read
as its first channel; a truly coloured image is refused (convert it to grey
first). Vector masks (segmentation objects) give the channel ``label_channel``.
"""
from __future__ import annotations

import re
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from .._nrrd import NrrdArray, read_nrrd_array, read_simple_nrrd

__all__ = ["ImageLike", "load_image", "load_mask", "describe", "read_plain", "reuse_reads"]

ImageLike = Union[np.ndarray, "sitk.Image", str, Path]


def describe(obj: Any) -> str:
    """Short description of an input for error messages."""
    if isinstance(obj, (str, Path)):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return f"array{obj.shape}"
    if isinstance(obj, sitk.Image):
        return f"SimpleITK image {obj.GetSize()}"
    return type(obj).__name__


# One-slot cache of the last image file read, on only inside :func:`reuse_reads` (batch workers, where
# consecutive cases often share their image: the loop's K masks per radiograph); "plain" is the same for
# :func:`read_plain`.
_LAST_READ: dict[str, Any] = {"on": False, "key": None, "image": None, "plain_key": None, "plain": None}


@contextmanager
def reuse_reads() -> Iterator[None]:
    """Within the block, reading the same *image* file again (same path, size and modification time) reuses
    the image read last instead of decoding the file again. Masks are always read. Each call gets its own copy
    (SimpleITK images are copy-on-write), so nothing a caller changes reaches the cache."""
    prev = _LAST_READ["on"]
    _LAST_READ["on"] = True
    try:
        yield
    finally:
        _LAST_READ.update(on=prev, key=None, image=None, plain_key=None, plain=None)


def _file_key(path: Path) -> Optional[tuple[int, int, int, int]]:
    """(device, inode, size, modification time) of a regular file: the file, however it is named."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def read_plain(obj: Any, role: str) -> Optional[NrrdArray]:
    """The pixels and geometry of ``obj`` when it names a plain NRRD file (``chexradi._nrrd.read_nrrd_array``;
    the loop's images and masks), with its array read-only; else None (another input, a missing or other file:
    :func:`load_image` / :func:`load_mask` read it, or say what is wrong). Within :func:`reuse_reads` an *image*
    file read last is not read again."""
    if not isinstance(obj, (str, Path)) or not str(obj).lower().endswith(".nrrd"):
        return None
    path = Path(obj)
    key = _file_key(path) if _LAST_READ["on"] and role == "image" else None
    if key is not None and key == _LAST_READ["plain_key"]:
        return _LAST_READ["plain"]
    got = read_nrrd_array(path)
    if got is not None:
        got.array.flags.writeable = False  # shared by the cases of a batch: nobody may change it
    if key is not None:  # a file that is not plain NRRD is not tried again either
        _LAST_READ.update(plain_key=key, plain=got)
    return got


def _read(path: Path, role: str) -> sitk.Image:
    if _LAST_READ["on"] and role == "image":
        key = _file_key(path)
        if key is not None:
            if key != _LAST_READ["key"]:
                _LAST_READ.update(key=None, image=None)
                _LAST_READ.update(image=_read_file(path, role), key=key)
            return sitk.Image(_LAST_READ["image"])
    return _read_file(path, role)


def _read_file(path: Path, role: str) -> sitk.Image:
    if not path.exists():
        hint = f" (relative paths are resolved from {Path.cwd()})" if not path.is_absolute() else ""
        raise FileNotFoundError(f"{role} file not found: {path}; check the path{hint}.")
    if path.is_dir():
        raise ValueError(f"{role} {path} is a directory; pass a single image file (NRRD, NIfTI, PNG, JPEG, DICOM).")
    if path.suffix.lower() == ".nrrd":
        fast = read_simple_nrrd(path)  # the loop's masks and images: same image, a fraction of the time
        if fast is not None:
            return fast
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        if _dicom_without_pixels(path):
            raise ValueError(f"{role} {path} is a DICOM file without pixel data (e.g. a structured report, a "
                             "presentation state or a DICOMDIR); pass the DICOM file of the image itself.") from None
        lines = str(exc).strip().splitlines()
        # the reader's own words, without ITK's object address (e.g. "PNGImageIO: Error while reading file")
        detail = re.sub(r"^(ITK ERROR|sitk::ERROR): |\(0x[0-9a-fA-F]+\)", "", lines[-1] if lines else "")
        raise _unreadable(path, role, detail.strip()) from None
    if _jpeg_truncated(path):
        raise _unreadable(path, role, "the JPEG data ends before its end-of-image marker: the file was cut short")
    return img


def _dicom_without_pixels(path: Path) -> bool:
    """True when ``path`` is a DICOM file (by its 'DICM' preamble or suffix) that holds no pixel data."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if head[128:132] != b"DICM" and path.suffix.lower() not in (".dcm", ".dicom", ".dic"):
        return False
    try:
        import pydicom

        ds = pydicom.dcmread(str(path), force=True, stop_before_pixels=False, defer_size="1 KB")
    except Exception:  # not DICOM after all, or too damaged to tell: the generic message applies
        return False
    return not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def _jpeg_truncated(path: Path) -> bool:
    """True when ``path`` is a JPEG whose last scan has no end-of-image marker (the file was cut short).

    libjpeg only warns about a premature end of file and fills the missing rows with grey; such an
    image must not reach the features."""
    try:
        with open(path, "rb") as fh:
            if fh.read(3) != b"\xff\xd8\xff":
                return False  # not a JPEG: nothing more is read
            data = fh.read()
    except OSError:
        return False
    sos = data.rfind(b"\xff\xda")
    return sos < 0 or data.find(b"\xff\xd9", sos) < 0


def _unreadable(path: Path, role: str, detail: str) -> ValueError:
    return ValueError(f"cannot read {role} {path}: not a readable image (truncated or unsupported format). "
                      f"Re-export it as NRRD, NIfTI, PNG or DICOM.{f' ({detail})' if detail else ''}")


def _from_array(array: np.ndarray, spacing: Optional[Sequence[float]], role: str) -> sitk.Image:
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{role} array must be 2-D (y, x) or 3-D (z, y, x), got shape {arr.shape}.")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "uif":
        raise ValueError(f"{role} array must be numeric, got dtype {arr.dtype}.")
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    if spacing is not None:
        sp = [float(s) for s in spacing]
        if len(sp) != arr.ndim or not all(np.isfinite(sp)) or min(sp) <= 0:
            raise ValueError(f"spacing {tuple(spacing)} must give one positive number per axis of the "
                             f"{arr.ndim}-D {role} (numpy order).")
        img.SetSpacing(tuple(reversed(sp)))
    return img


def _to_sitk(obj: Any, spacing: Optional[Sequence[float]], role: str) -> sitk.Image:
    if isinstance(obj, sitk.Image):
        if spacing is not None:
            raise ValueError(f"spacing is taken from the SimpleITK {role}; do not pass spacing= with it.")
        return obj
    if isinstance(obj, np.ndarray):
        return _from_array(obj, spacing, role)
    if isinstance(obj, (str, Path)):
        img = _read(Path(obj), role)
        if spacing is not None:
            sp = [float(s) for s in spacing]
            if len(sp) != img.GetDimension():
                raise ValueError(f"spacing {tuple(spacing)} does not match the {img.GetDimension()}-D {role} {obj}.")
            img.SetSpacing(tuple(reversed(sp)))
        return img
    raise ValueError(f"{role} must be a numpy array, a SimpleITK image or a file path, got {type(obj).__name__}.")


def load_image(obj: ImageLike, *, spacing: Optional[Sequence[float]] = None) -> sitk.Image:
    """Load an image as a scalar SimpleITK image (see module docstring)."""
    img = _to_sitk(obj, spacing, "image")
    ncomp = img.GetNumberOfComponentsPerPixel()
    if ncomp > 1:
        arr = sitk.GetArrayViewFromImage(img)
        colour = arr[..., :3] if ncomp >= 3 else arr
        if ncomp >= 3 and np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2]):
            sel = sitk.VectorIndexSelectionCastImageFilter()
            sel.SetIndex(0)
            img = sel.Execute(img)
        else:
            raise ValueError(
                f"image {describe(obj)} has {ncomp} colour channels that differ; radiomics needs a grey image. "
                "Convert it to grey first (e.g. PIL: Image.open(p).convert('L'))."
            )
    if img.GetDimension() not in (2, 3):
        raise ValueError(f"image {describe(obj)} is {img.GetDimension()}-D; chexradi handles 2-D and 3-D images.")
    return img


def load_mask(obj: ImageLike, *, spacing: Optional[Sequence[float]] = None, label_channel: int = 0) -> sitk.Image:
    """Load a mask as an integer label map; vector masks give channel ``label_channel``."""
    msk = _to_sitk(obj, spacing, "mask")
    ncomp = msk.GetNumberOfComponentsPerPixel()
    if ncomp > 1:
        if label_channel >= ncomp:
            raise ValueError(f"label_channel={label_channel} requested but mask {describe(obj)} has {ncomp} channels.")
        sel = sitk.VectorIndexSelectionCastImageFilter()
        sel.SetIndex(int(label_channel))
        msk = sel.Execute(msk)
    if msk.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        arr = sitk.GetArrayViewFromImage(msk)
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"mask {describe(obj)} holds non-integer values; a mask is a label map "
                             "(0 = background, 1.. = labels). Round or threshold it first.")
    if msk.GetDimension() not in (2, 3):
        raise ValueError(f"mask {describe(obj)} is {msk.GetDimension()}-D; chexradi handles 2-D and 3-D masks.")
    if msk.GetPixelID() in (sitk.sitkUInt8, sitk.sitkUInt16, sitk.sitkUInt32, sitk.sitkInt8, sitk.sitkInt16,
                            sitk.sitkInt32):
        return msk  # integer label maps are used as they are (no copy)
    return sitk.Cast(msk, sitk.sitkUInt32)
