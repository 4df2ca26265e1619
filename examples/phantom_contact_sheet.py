"""A contact sheet of the phantom's findings: each finding at difficulty 0, 0.5 and 1, with and without it.

Each row is one finding, drawn alone (the other findings suppressed) in the same case; each
difficulty gets two tiles: the radiograph with the finding and its ground-truth box (green), and
the same radiograph without it, so the eye can compare. Tiles are the phantom at ``--size`` pixels
(the loop's default, 128), enlarged ``--zoom`` times without smoothing, so what is seen is what the
network gets.

Usage::

    python examples/phantom_contact_sheet.py --out docs/img/phantom_v2_contact_sheet.png
    python examples/phantom_contact_sheet.py --version 1 --size 96 --out v1.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DIFFICULTIES = (0.0, 0.5, 1.0)


def contact_sheet(*, size: int, version: int, seed: int, case: int, zoom: int) -> np.ndarray:
    """The sheet as an RGB ``uint8`` array."""
    from PIL import Image, ImageDraw, ImageFont

    from chexradi.data.phantom import DEFAULT_CLASSES, make_case

    tile = size * zoom
    pad, label_w, head_h = 6, 150, 44
    cols = 2 * len(DIFFICULTIES)
    width = label_w + cols * (tile + pad)
    height = head_h + len(DEFAULT_CLASSES) * (tile + pad)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    for j, d in enumerate(DIFFICULTIES):
        x = label_w + 2 * j * (tile + pad)
        draw.text((x + 4, 4), f"difficulty {d:g}: with | without", fill=(0, 0, 0), font=font)
    draw.text((4, 24), f"phantom v{version}, {size} px, seed {seed}", fill=(80, 80, 80), font=font)
    for i, name in enumerate(DEFAULT_CLASSES):
        y = head_h + i * (tile + pad)
        draw.text((6, y + tile // 2 - 8), name, fill=(0, 0, 0), font=font)
        others = tuple(c for c in DEFAULT_CLASSES if c != name)
        for j, d in enumerate(DIFFICULTIES):
            with_ = make_case(case + i, size=size, seed=seed, difficulty=d, force=(name,), suppress=others,
                              version=version)
            without = make_case(case + i, size=size, seed=seed, difficulty=d, suppress=DEFAULT_CLASSES,
                                version=version)
            for k, c in enumerate((with_, without)):
                grey = np.round(np.clip(c.image, 0, 1) * 255).astype(np.uint8)
                im = Image.fromarray(grey).resize((tile, tile), Image.NEAREST).convert("RGB")
                if k == 0:
                    bx, by, bw, bh = c.boxes[name]
                    ImageDraw.Draw(im).rectangle([bx * zoom - 1, by * zoom - 1, (bx + bw) * zoom, (by + bh) * zoom],
                                                 outline=(0, 220, 0), width=2)
                sheet.paste(im, (label_w + (2 * j + k) * (tile + pad), y))
    return np.asarray(sheet)


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="PNG to write.")
    ap.add_argument("--size", type=int, default=128, help="Phantom side in pixels [128, the loop's default].")
    ap.add_argument("--version", type=int, default=2, choices=(1, 2), help="Phantom version [2].")
    ap.add_argument("--seed", type=int, default=0, help="Phantom seed [0].")
    ap.add_argument("--case", type=int, default=0, help="First case index (one per row) [0].")
    ap.add_argument("--zoom", type=int, default=2, help="Enlargement of each tile, nearest neighbour [2].")
    args = ap.parse_args(argv)
    from chexradi._io import atomic_path
    from PIL import Image

    rgb = contact_sheet(size=args.size, version=args.version, seed=args.seed, case=args.case, zoom=args.zoom)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out, suffix=".tmp.png") as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    print(f"wrote {args.out} ({rgb.shape[1]} x {rgb.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
