"""`chexradi heatmap` end to end: overlays, masks, tables, flags, bad input, and extract on its cases.csv."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from click.testing import CliRunner
from PIL import Image

from chexradi.cam.masks import Box, heatmap_to_mask
from chexradi.cam.overlay import jet, panel_scale, render_overlay
from chexradi.cam.methods import heatmaps
from chexradi.cli import cli
from chexradi.data.readers import read_radiograph
from chexradi.data.transforms import resize, to_model_input
from chexradi.nn import create_model, save_checkpoint

CLASSES = ["Nodule", "Effusion"]
SIZE = 64


def _radiograph(seed: int, shape: tuple[int, int], dtype: type) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    body = np.exp(-(((yy - shape[0] / 2) / (0.4 * shape[0])) ** 2 + ((xx - shape[1] / 2) / (0.35 * shape[1])) ** 2))
    top = 255 if dtype == np.uint8 else 4095
    img = top * (0.2 + 0.6 * body) + rng.normal(0, 0.03 * top, shape)
    return np.clip(img, 0, top).astype(dtype)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("heatmap")
    torch.manual_seed(0)
    model = create_model("resnet18_ta", num_classes=2, in_chans=1, class_names=CLASSES).eval()
    ckpt = save_checkpoint(root / "model.pt", model, meta={"image_size": SIZE})
    imgs = root / "images"
    imgs.mkdir()
    Image.fromarray(_radiograph(1, (96, 80), np.uint8)).save(imgs / "a.png")
    Image.fromarray(_radiograph(2, (120, 128), np.uint16)).save(imgs / "b.png")
    return {"root": root, "model": model, "ckpt": ckpt, "images": [imgs / "a.png", imgs / "b.png"]}


def _run(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_heatmap_writes_overlays_masks_and_tables(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _run("heatmap", setup["ckpt"], *setup["images"], "--out", out, "--all-classes", "--quiet")
    assert res.exit_code == 0, res.output
    model = setup["model"]

    preds = _read_csv(out / "predictions.csv")
    assert [Path(r["image"]).name for r in preds] == ["a.png", "b.png"]
    regions = _read_csv(out / "regions.csv")
    assert len(regions) == 4 and {r["class"] for r in regions} == set(CLASSES)

    for path, pred in zip(setup["images"], preds):
        img, spacing = read_radiograph(path)
        x = torch.from_numpy(to_model_input(img, size=SIZE))[None]
        maps, logits = heatmaps(model, x, method="gradcam")
        probs = torch.sigmoid(logits)[0].numpy()
        # the probabilities are the model's on the documented normalisation at the checkpoint's size
        np.testing.assert_allclose([float(pred[f"prob_{c}"]) for c in CLASSES], probs, rtol=1e-4)
        for k, name in enumerate(CLASSES):
            # the overlay: two panels of at least 512 px on the long side, the caption below them
            png = np.asarray(Image.open(out / path.stem / f"{name}.png"))
            s = panel_scale(img.shape)
            ph, pw = round(img.shape[0] * s), round(img.shape[1] * s)
            assert max(ph, pw) >= 512
            assert png.shape[1:] == (2 * pw + 8, 3) and png.shape[0] >= ph + 20
            left = png[:ph, :pw].astype(int)
            grey = (left[..., 0] == left[..., 1]) & (left[..., 1] == left[..., 2])
            assert grey.mean() > 0.8  # the radiograph, in grey, with only the box drawn in colour
            # the mask: the heatmap resized to the radiograph and thresholded at half its maximum
            expect = heatmap_to_mask(np.clip(resize(maps[0, k].numpy(), img.shape), 0, 1))
            mask_file = out / path.stem / f"{name}_mask.nrrd"
            m = sitk.ReadImage(str(mask_file))
            np.testing.assert_array_equal(sitk.GetArrayFromImage(m), expect.mask)
            assert m.GetSpacing() == (spacing[1], spacing[0])
            row = next(r for r in regions if r["class"] == name and r["name"] == path.stem)
            box = expect.boxes[0]
            assert (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"])) == box.as_tuple()
            assert float(row["threshold"]) == pytest.approx(expect.threshold)

    manifest = json.loads((out / "heatmap.json").read_text())
    assert manifest["settings"]["method"] == "gradcam" and manifest["settings"]["threshold"] == "fraction"
    assert manifest["settings"]["size"] == SIZE and manifest["config"]["name"] == "resnet18_ta"
    assert manifest["versions"]["torch"] == torch.__version__ and manifest["failures"] == []
    assert not list(out.rglob(".*tmp*")), "temporary files left behind"

    # cases.csv feeds the radiomics batch directly
    cases = _read_csv(out / "cases.csv")
    assert len(cases) == sum(1 for r in regions if r["mask"] and r["full"] == "False")
    res = _run("extract", "--batch", out / "cases.csv", "--out", tmp_path / "features.csv", "--quiet")
    assert res.exit_code == 0, res.output
    feats = _read_csv(tmp_path / "features.csv")
    assert len(feats) == len(cases) and "original_firstorder_Mean" in feats[0]


def test_overlays_and_masks_made_durable_at_once_before_the_tables(setup: dict, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No overlay or mask pays an fsync of its own; their folders are synced once, before regions.csv."""
    import chexradi.cam.export as export
    import chexradi.cam.overlay as overlay
    import chexradi.data.lungs as lungs

    writes: list = []
    synced: list = []
    write_nrrd, atomic_path, sync_folders = lungs.write_nrrd, overlay.atomic_path, export.sync_folders

    def spy_write(path, arr, spacing, *, sync=True):
        writes.append(("mask", sync))
        return write_nrrd(path, arr, spacing, sync=sync)

    def spy_atomic(path, *, suffix=".tmp", sync=True):
        writes.append(("overlay", sync))
        return atomic_path(path, suffix=suffix, sync=sync)

    def spy_sync(folders):
        synced.append((sorted(Path(f).name for f in folders), len(writes), (out / "regions.csv").exists()))
        return sync_folders(folders)

    monkeypatch.setattr(lungs, "write_nrrd", spy_write)
    monkeypatch.setattr(overlay, "atomic_path", spy_atomic)
    monkeypatch.setattr(export, "sync_folders", spy_sync)
    out = tmp_path / "out"
    res = _run("heatmap", setup["ckpt"], *setup["images"], "--out", out, "--all-classes", "--quiet")
    assert res.exit_code == 0, res.output
    regions = _read_csv(out / "regions.csv")
    n_masks = sum(1 for r in regions if r["mask"])
    assert sorted(writes) == sorted([("mask", False)] * n_masks + [("overlay", False)] * len(regions))
    assert n_masks > 0 and synced == [(["a", "b"], len(writes), False)]


def test_min_prob_selects_predicted_classes(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _run("heatmap", setup["ckpt"], *setup["images"], "--out", out, "--min-prob", "0.5", "-q",
               "--method", "cam", "--threshold", "otsu", "--class", "Effusion")
    assert res.exit_code == 0, res.output
    preds = _read_csv(out / "predictions.csv")
    expected = {(Path(p["image"]).stem, "Effusion") for p in preds if float(p["prob_Effusion"]) >= 0.5}
    got = {(r["name"], r["class"]) for r in _read_csv(out / "regions.csv")}
    assert got == expected
    assert json.loads((out / "heatmap.json").read_text())["settings"]["classes"] == ["Effusion"]


def test_folder_argument_and_bad_image_keeps_going(setup: dict, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in setup["images"]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    res = _run("heatmap", setup["ckpt"], folder, "--out", out, "--all-classes", "-q")
    assert res.exit_code == 1
    assert "broken.png" in res.output
    assert len(_read_csv(out / "predictions.csv")) == 2
    failures = json.loads((out / "heatmap.json").read_text())["failures"]
    assert [Path(f["image"]).name for f in failures] == ["broken.png"]


def test_flags_empty_and_full_masks(setup: dict, tmp_path: Path) -> None:
    # Otsu with a huge smoothing makes a nearly flat map; a fixed 0 threshold keeps every pixel.
    out = tmp_path / "out"
    res = _run("heatmap", setup["ckpt"], setup["images"][0], "--out", out, "--all-classes", "-q",
               "--threshold", "fixed", "--value", "0")
    assert res.exit_code == 0, res.output
    regions = _read_csv(out / "regions.csv")
    assert all(r["full"] == "True" for r in regions)
    assert _read_csv(out / "cases.csv") == []  # flagged masks are not passed on
    assert json.loads((out / "heatmap.json").read_text())["n_flagged"] == 2


@pytest.mark.parametrize("case", ["missing", "state_dict", "unknown_class", "bad_value"])
def test_bad_model_or_options_exit_2(setup: dict, tmp_path: Path, case: str) -> None:
    model = setup["ckpt"]
    extra: list[str] = []
    if case == "missing":
        model = tmp_path / "nope.pt"
        needle = "not found"
    elif case == "state_dict":
        model = tmp_path / "sd.pt"
        torch.save(setup["model"].state_dict(), model)
        needle = "weights=PATH"
    elif case == "unknown_class":
        extra = ["--class", "Hernia"]
        needle = "Nodule, Effusion"
    else:
        extra = ["--threshold", "fraction", "--value", "1.5"]
        needle = "value"
    res = _run("heatmap", model, setup["images"][0], "--out", tmp_path / "o", *extra)
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir()), "wrote output before failing"


def test_render_overlay_panels_box_and_heat() -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (50, 60))
    yy, xx = np.mgrid[:50, :60]
    heat = np.exp(-((yy - 20) ** 2 + (xx - 40) ** 2) / 20.0)
    mask = heat > 0.5
    rgb = render_overlay(img, heat, boxes=[Box(30, 12, 20, 16, 1.0)], mask=mask, caption="Nodule p=0.9")
    # a 50 x 60 image is enlarged so the panel's long side is 512 px: 427 x 512 per panel, 8 px apart
    s = 512 / 60
    h, w = round(50 * s), 512
    assert rgb.shape[1] == 2 * w + 8 and rgb.shape[0] > h
    left, right = rgb[:h, :w].astype(int), rgb[:h, w + 8:].astype(int)
    line = 2  # box and contour width at a 512-px panel
    assert tuple(left[round(12 * s) + line // 2, round(40 * s)]) == (0, 255, 0)  # top edge of the box
    assert tuple(right[round(20 * s), round(30 * s)]) == (0, 255, 0)  # left edge of the box, right panel
    assert left[40 * 8, 5, 0] == left[40 * 8, 5, 1] == left[40 * 8, 5, 2]  # grey radiograph away from the box
    r, g, b = right[round(20 * s) + 12, round(40 * s) + 12]
    assert r > g and r > b  # near the hottest pixel: red on the right panel
    assert tuple(right[h - 5, 5]) == tuple(left[h - 5, 5])  # no heat, no colour
    # the mask contour is white on the right panel only: a ring around the hot spot
    white_r, white_l = (right == 255).all(-1), (left == 255).all(-1)
    ring = np.zeros_like(white_r)
    yy2, xx2 = np.mgrid[:h, :w]
    d = np.hypot(yy2 / s - 20, xx2 / s - 40)
    ring[(d > 2.5) & (d < 5.5)] = True
    assert (white_r & ring).sum() > 100 and (white_r & ring).sum() > 10 * (white_l & ring).sum()
    caption = rgb[h:]
    assert caption.shape[0] >= 20 and (caption > 200).any()  # the caption is below the panels, in white
    assert not (rgb[:h, w:w + 8] > 0).any()  # nothing drawn in the gap: the caption never covers the image
    np.testing.assert_allclose(jet(np.array([0.0, 0.5, 1.0])), [[0, 0, 0.5], [0.5, 1, 0.5], [0.5, 0, 0]])
    long = render_overlay(img, heat, caption="a caption far too long for two panels of this width " * 8)
    assert long.shape[0] > rgb.shape[0]  # the caption wraps onto more lines instead of being cut
    assert render_overlay(img, heat).shape == (h, 2 * w + 8, 3)  # no caption, no band
    big = render_overlay(np.zeros((2000, 1500)), np.zeros((2000, 1500)))
    assert big.shape == (1024, 2 * 768 + 8, 3)  # a large radiograph is reduced to 1024 px
    with pytest.raises(ValueError, match="same shape"):
        render_overlay(img, heat[:, :-1])
    with pytest.raises(ValueError, match="min_side"):
        render_overlay(img, heat, min_side=600, max_side=500)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unavailable_device_exits_2_before_writing(setup: dict, tmp_path: Path) -> None:
    res = _run("heatmap", setup["ckpt"], setup["images"][0], "--out", tmp_path / "o", "--device", "cuda")
    assert res.exit_code == 2, res.output
    assert "CUDA" in res.output and "device='cpu'" in res.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
