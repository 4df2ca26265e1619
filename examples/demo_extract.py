"""Demo: radiomics of the lung fields of real chest radiographs with `chexradi extract`.

1. Collects real radiographs: ../shared/data/real-cxr (when this checkout has it) and the
   full-size CR radiograph RG1_UNCR.dcm that the registry package pydicom-data installs.
2. Windows each radiograph to 8 bits (0.5-99.5 percentile, as ChestX-ray14's PNGs are) and
   generates its lung-field mask (chexradi.data.lungs, classical image processing).
3. Writes image/mask NRRDs, an overlay PNG per case, and a batch CSV.
4. Runs the real CLI: `chexradi extract --batch cases.csv --out features.csv --jobs 2`.

Usage: python examples/demo_extract.py [--out demo-output] [--jobs 2]
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from chexradi.data.lungs import lung_field_mask, read_radiograph, save_mask

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHEXRADI_SHARED_DATA", REPO.parent / "shared" / "data"))


def radiographs() -> list[tuple[str, Path]]:
    found = []
    folder = SHARED / "real-cxr"
    if folder.is_dir():
        found += [(p.stem, p) for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".dcm")]
    else:
        print(f"note: {folder} not found; using only the radiograph shipped by pydicom-data", file=sys.stderr)
    try:
        from pydicom.data import get_testdata_file

        rg1 = get_testdata_file("RG1_UNCR.dcm")
    except ImportError:
        rg1 = None
    if rg1:
        found.append(("RG1_UNCR", Path(rg1)))
    if not found:
        sys.exit("no radiograph found: install pydicom-data (pip install pydicom-data) or provide ../shared/data")
    return found


def overlay(image8: np.ndarray, mask: np.ndarray, path: Path) -> None:
    from PIL import Image

    rgb = np.stack([image8] * 3, -1).astype(np.float32)
    for lab, colour in ((1, (255, 60, 60)), (2, (60, 220, 60))):
        sel = mask == lab
        rgb[sel] = 0.6 * rgb[sel] + 0.4 * np.array(colour)
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo-output"))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    out: Path = args.out
    (out / "cases").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(parents=True, exist_ok=True)

    rows = []
    for name, path in radiographs():
        image, spacing = read_radiograph(path)
        lo, hi = np.percentile(image, [0.5, 99.5])
        image8 = np.clip((image - lo) / (hi - lo) * 255.0, 0, 255).round().astype(np.uint8)
        lungs = lung_field_mask(image8.astype(np.float64), spacing=spacing, separate=True)
        img = sitk.GetImageFromArray(image8)
        img.SetSpacing(tuple(reversed(spacing)))
        ipath = out / "cases" / f"{name}.nrrd"
        sitk.WriteImage(img, str(ipath), True)
        mpath = save_mask((lungs > 0).astype(np.uint8), spacing, out / "cases" / f"{name}_lungs.nrrd")
        overlay(image8, lungs, out / "overlays" / f"{name}.png")
        rows.append({"Image": ipath.resolve(), "Mask": mpath.resolve(), "Case": name, "Source": path.name,
                     "LungFraction": f"{(lungs > 0).mean():.3f}"})
        print(f"  {name:<28} {image.shape[1]}x{image.shape[0]}  lung fields {100 * (lungs > 0).mean():.1f}% of the image")

    cases_csv = out / "cases.csv"
    with cases_csv.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    features = out / "features.csv"
    cmd = [sys.executable, "-m", "chexradi", "extract", "--batch", str(cases_csv), "--out", str(features),
           "--jobs", str(args.jobs)]
    print("\n$ chexradi extract --batch", cases_csv, "--out", features, "--jobs", args.jobs, flush=True)
    rc = subprocess.call(cmd)
    if rc == 0:
        with features.open() as fh:
            reader = csv.DictReader(fh)
            table = list(reader)
        n_feat = sum(1 for c in reader.fieldnames or [] if c.startswith("original_"))
        print(f"\n{len(table)} radiographs x {n_feat} radiomics features of the lung fields")
        print(f"features: {features.resolve()}")
        print(f"overlays: {(out / 'overlays').resolve()}/*.png (the radiograph with its lung-field mask)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
