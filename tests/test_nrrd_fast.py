"""The plain-NRRD fast path of the radiomics reader gives SimpleITK's image, or steps aside."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA

from chexradi.radiomics.imageio import load_image, load_mask
from chexradi._nrrd import read_nrrd_array, read_simple_nrrd, write_nrrd

DTYPES = (np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64)


def same(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetPixelID() == b.GetPixelID() and a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing()
            and a.GetOrigin() == b.GetOrigin() and a.GetDirection() == b.GetDirection()
            and a.GetNumberOfComponentsPerPixel() == b.GetNumberOfComponentsPerPixel()
            and np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b), equal_nan=True))


def _image(dtype, ndim: int, seed: int) -> sitk.Image:
    rng = np.random.default_rng(seed)
    shape = (4, 7, 9)[3 - ndim:]
    arr = (rng.normal(size=shape) * 60).astype(dtype)
    if np.dtype(dtype).kind == "f":
        arr.flat[3] = np.nan
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing([0.3 + 0.1 * i for i in range(ndim)])
    img.SetOrigin([1.5 * i - 2.25 for i in range(ndim)])
    if seed % 2:  # flips and a permutation of the axes: still along the coordinate axes
        d = np.eye(ndim)[::-1] * np.array([-1] + [1] * (ndim - 1))
        img.SetDirection(d.ravel().tolist())
    return img


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_written_files_read_the_same(tmp_path: Path, dtype, ndim: int, compress: bool):
    for seed in (0, 1):
        path = tmp_path / f"x{seed}.nrrd"
        sitk.WriteImage(_image(dtype, ndim, seed), str(path), compress)
        fast = read_simple_nrrd(path)
        assert fast is not None, path.read_bytes()[:300]
        assert same(fast, sitk.ReadImage(str(path)))


def test_pyradiomics_cases_and_real_files_read_the_same():
    files = sorted((SHARED_DATA / "pyradiomics-cases").glob("*.nrrd"))
    if not files:
        pytest.skip(f"PyRadiomics test cases not available under {SHARED_DATA}")
    for f in files:
        fast = read_simple_nrrd(f)
        assert fast is not None and same(fast, sitk.ReadImage(str(f))), f


def test_big_endian_and_comments(tmp_path: Path):
    arr = (np.arange(12, dtype=np.int16) * 300 - 1000).reshape(3, 4)
    head = ("NRRD0004\n# written by hand\ntype: short\ndimension: 2\nspace dimension: 2\nsizes: 4 3\n"
            "space directions: (0.5,0) (0,2)\nkinds: domain domain\nendian: big\nencoding: gzip\n"
            "space origin: (1,-3)\n\n")
    path = tmp_path / "be.nrrd"
    path.write_bytes(head.encode() + gzip.compress(arr.astype(">i2").tobytes()))
    fast = read_simple_nrrd(path)
    assert fast is not None and same(fast, sitk.ReadImage(str(path)))
    assert np.array_equal(sitk.GetArrayFromImage(fast), arr) and fast.GetSpacing() == (0.5, 2.0)


def _hand(tmp_path: Path, name: str, extra: str = "", *, data: bytes = bytes(12), dirs: str = "(1,0) (0,1)",
          sizes: str = "4 3") -> Path:
    head = (f"NRRD0004\ntype: unsigned char\ndimension: 2\nspace dimension: 2\nsizes: {sizes}\n"
            f"space directions: {dirs}\n{extra}encoding: raw\n\n")
    path = tmp_path / name
    path.write_bytes(head.encode() + data)
    return path


@pytest.mark.parametrize("case", ["oblique", "key-value", "unknown-field", "short-data", "long-data", "vector",
                                  "detached", "bad-type", "sizes-mismatch"])
def test_anything_else_goes_to_simpleitk(tmp_path: Path, case: str):
    path = {
        "oblique": lambda: _hand(tmp_path, "a.nrrd", dirs="(0.8,0.6) (-0.6,0.8)"),
        "key-value": lambda: _hand(tmp_path, "a.nrrd", "modality:=CT\n"),
        "unknown-field": lambda: _hand(tmp_path, "a.nrrd", "spacings: 1 1\n"),
        "short-data": lambda: _hand(tmp_path, "a.nrrd", data=bytes(11)),
        "long-data": lambda: _hand(tmp_path, "a.nrrd", data=bytes(13)),
        "vector": lambda: _hand(tmp_path, "a.nrrd", "kinds: domain vector\n"),
        "detached": lambda: _hand(tmp_path, "a.nrrd", "data file: a.raw\n", data=b""),
        "bad-type": lambda: _hand(tmp_path, "a.nrrd").with_name("a.nrrd"),
        "sizes-mismatch": lambda: _hand(tmp_path, "a.nrrd", sizes="4 3 1"),
    }[case]()
    if case == "bad-type":
        path.write_bytes(path.read_bytes().replace(b"unsigned char", b"block"))
    assert read_simple_nrrd(path) is None


def test_truncated_file_keeps_simpleitks_error(tmp_path: Path):
    path = tmp_path / "cut.nrrd"
    sitk.WriteImage(_image(np.int16, 2, 0), str(path), True)
    path.write_bytes(path.read_bytes()[:-20])
    assert read_simple_nrrd(path) is None
    with pytest.raises(ValueError, match="cannot read image .*cut.nrrd: not a readable image"):
        load_image(str(path))


def test_loader_uses_it_for_masks_and_images(tmp_path: Path, monkeypatch):
    path = tmp_path / "m.nrrd"
    m = np.zeros((9, 11), np.uint8)
    m[2:6, 3:9] = 1
    sitk.WriteImage(sitk.GetImageFromArray(m), str(path), True)
    calls = []

    def no_sitk(*a, **k):
        calls.append(a)
        raise AssertionError("SimpleITK's reader was used")

    monkeypatch.setattr(sitk, "ReadImage", no_sitk)
    assert np.array_equal(sitk.GetArrayFromImage(load_mask(str(path))), m)
    assert np.array_equal(sitk.GetArrayFromImage(load_image(str(path))), m)
    assert not calls


# ------------------------------------------------------------------------------------------- writing
@pytest.mark.parametrize("dtype", (*DTYPES, np.bool_), ids=[np.dtype(d).name for d in (*DTYPES, np.bool_)])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("sync", [True, False], ids=["sync", "nosync"])
def test_write_nrrd_reads_back_the_same_everywhere(tmp_path: Path, dtype, ndim: int, sync: bool):
    rng = np.random.default_rng(ndim)
    shape = (3, 5, 7)[3 - ndim:]
    arr = (rng.normal(size=shape) * 60).astype(dtype)
    spacing = (0.7, 0.3, 1.25)[3 - ndim:]  # numpy order
    path = write_nrrd(tmp_path / "sub" / "x.nrrd", arr, spacing, sync=sync)
    assert path == tmp_path / "sub" / "x.nrrd" and [p.name for p in path.parent.iterdir()] == ["x.nrrd"]
    ref = sitk.ReadImage(str(path))  # SimpleITK's own reader
    want = arr.astype(np.uint8) if dtype is np.bool_ else arr
    assert np.array_equal(sitk.GetArrayFromImage(ref), want, equal_nan=True)
    assert sitk.GetArrayFromImage(ref).dtype == want.dtype
    assert ref.GetSpacing() == tuple(reversed(spacing)) and ref.GetOrigin() == (0.0,) * ndim
    assert ref.GetDirection() == tuple(np.eye(ndim).ravel())
    fast = read_simple_nrrd(path)
    assert fast is not None and same(fast, ref)
    got = read_nrrd_array(path)
    assert got is not None and np.array_equal(got.array, want)
    assert got.spacing == list(ref.GetSpacing()) and got.direction == list(ref.GetDirection())


def test_write_nrrd_refuses_what_it_cannot_write(tmp_path: Path):
    with pytest.raises(ValueError, match=r"cannot write .*a\.nrrd: .*2-D or 3-D array"):
        write_nrrd(tmp_path / "a.nrrd", np.zeros(4, np.uint8), (1.0,))
    with pytest.raises(ValueError, match="one spacing per axis"):
        write_nrrd(tmp_path / "a.nrrd", np.zeros((4, 4), np.uint8), (1.0,))
    with pytest.raises(ValueError, match="complex128"):
        write_nrrd(tmp_path / "a.nrrd", np.zeros((4, 4), complex), (1.0, 1.0))
    assert not list(tmp_path.iterdir())


def test_write_nrrd_replaces_atomically(tmp_path: Path, monkeypatch):
    path = write_nrrd(tmp_path / "m.nrrd", np.ones((4, 4), np.uint8), (1.0, 1.0))
    before = path.read_bytes()

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("chexradi._io.os.replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_nrrd(path, np.zeros((4, 4), np.uint8), (1.0, 1.0))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.nrrd"]


def test_reuse_reads_decodes_a_file_once_whatever_its_name(tmp_path: Path, monkeypatch):
    import os

    from chexradi.radiomics import imageio

    path = write_nrrd(tmp_path / "img.nrrd", np.arange(12, dtype=np.float32).reshape(3, 4), (1.0, 1.0))
    os.symlink(path, tmp_path / "link.nrrd")
    decoded = []
    real = imageio._read_file
    monkeypatch.setattr(imageio, "_read_file", lambda p, role: decoded.append(p.name) or real(p, role))
    with imageio.reuse_reads():
        a = load_image(str(path))
        b = load_image(tmp_path / "link.nrrd")  # the same file under another name
        load_mask(str(path))  # masks are always read
        sitk.GetArrayViewFromImage(a)  # a copy per call: changing one leaves the next untouched
        a[0, 0] = 99.0
        assert sitk.GetArrayFromImage(load_image(str(path)))[0, 0] == 0.0
        write_nrrd(path, np.ones((3, 4), np.float32), (1.0, 1.0))  # a new file (new inode) at the same path
        c = load_image(str(path))
    assert decoded == ["img.nrrd", "img.nrrd", "img.nrrd"]
    assert np.array_equal(sitk.GetArrayFromImage(b), np.arange(12).reshape(3, 4))
    assert np.array_equal(sitk.GetArrayFromImage(c), np.ones((3, 4)))
    load_image(str(path))  # outside the block: read again
    assert len(decoded) == 4


def test_sync_folders_flushes_each_file_system_once(tmp_path: Path, monkeypatch):
    import chexradi._io as io_mod

    a, b = tmp_path / "a", tmp_path / "b"
    for f in (a, b):
        write_nrrd(f / "m.nrrd", np.ones((2, 2), np.uint8), (1.0, 1.0), sync=False)
    calls = []
    monkeypatch.setattr(io_mod.os, "sync", lambda: calls.append("sync"))
    monkeypatch.setattr(io_mod, "_fsync_dir", lambda f: calls.append(("dir", f.name)))
    real = io_mod._syncfs
    monkeypatch.setattr(io_mod, "_syncfs", lambda f: calls.append(("syncfs", f.name)) or real(f))
    io_mod.sync_folders([a, b, tmp_path / "missing"])
    if io_mod._libc_syncfs() is not None:  # Linux: one syncfs for the one file system, nothing machine-wide
        assert calls == [("syncfs", "a"), ("dir", "a"), ("dir", "b")]
    calls.clear()
    monkeypatch.setattr(io_mod, "_syncfs", lambda f: False)  # no syncfs: every file system, once
    io_mod.sync_folders([a, b])
    assert calls == ["sync", ("dir", "a"), ("dir", "b")]
    calls.clear()
    io_mod.sync_folders([tmp_path / "missing"])
    assert calls == []
