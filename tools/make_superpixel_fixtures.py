#!/usr/bin/env python3
"""Creates the SLIC superpixel fixtures under Tests/Fixtures/superpixels/.

For a few small RGB images (committed test images resized with Pillow's bilinear filter,
the built-in model's Fashion-MNIST sneaker, and a synthetic picture) it stores

    <image>.rgb.npy              the image as float32 (3, H, W) in [0, 1] (pixels / 255)
    <image>_n<N>[_c<C>].npy      int32 (H, W): scikit-image's labels for that image, N
                                 segments and compactness C (10 when not named)

and manifest.json listing the cases. skimage sees exactly the float32 values Elucidate
reads (converted to float64, the precision both compute in), called as LIME users call it:

    slic(image, n_segments=N, compactness=C, sigma=0, start_label=0,
         enforce_connectivity=True, channel_axis=-1)

Deterministic: re-running it with the pinned Pillow, numpy and scikit-image
(tools/requirements.txt) rewrites the same bytes.

Usage: python3 tools/make_superpixel_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import skimage
from PIL import Image
from skimage.segmentation import slic

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "Tests" / "Fixtures" / "superpixels"

# (name, source image or None for the synthetic one, (width, height) or None to keep, [(N, compactness)])
IMAGES = [
    ("photo_53x37", "Tests/Fixtures/images/photo.jpg", (53, 37), [(10, 10.0), (25, 10.0)]),
    ("large_96x64", "Tests/Fixtures/images/large.png", (96, 64), [(20, 10.0), (60, 10.0)]),
    ("tall_61x97", "Tests/Fixtures/images/tall.png", None, [(30, 10.0)]),
    ("sneaker_28x28", "Resources/images/sneaker.png", None, [(15, 10.0)]),
    ("synthetic_48x40", None, None, [(12, 10.0), (12, 20.0)]),
]


def synthetic() -> np.ndarray:
    """48×40 RGB8: a horizontal gradient, a disc, a bar and a little fixed-seed noise."""
    height, width = 40, 48
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([200 * x / (width - 1), 80 + 0 * x, 180 - 120 * y / (height - 1)], axis=-1)
    rgb[(y - 22) ** 2 + (x - 15) ** 2 < 81] = (250, 220, 40)
    rgb[5:12, 28:45] = (30, 160, 90)
    rgb += np.random.default_rng(7).normal(0, 4, rgb.shape)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def load(source: str | None, size: tuple[int, int] | None) -> np.ndarray:
    if source is None:
        return synthetic()
    image = Image.open(REPO / source).convert("RGB")
    if size is not None:
        image = image.resize(size, Image.BILINEAR)
    return np.asarray(image)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, source, size, runs in IMAGES:
        rgb = (load(source, size) / 255.0).astype(np.float32)  # (H, W, 3)
        np.save(OUT / f"{name}.rgb.npy", np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        for segments, compactness in runs:
            labels = slic(rgb.astype(np.float64), n_segments=segments, compactness=compactness, sigma=0,
                          start_label=0, enforce_connectivity=True, channel_axis=-1)
            suffix = "" if compactness == 10.0 else f"_c{compactness:g}"
            output = f"{name}_n{segments}{suffix}.npy"
            np.save(OUT / output, labels.astype(np.int32))
            cases.append({"name": f"{name}_n{segments}{suffix}", "image": f"{name}.rgb.npy",
                          "segments": segments, "compactness": compactness,
                          "labels": output, "count": int(labels.max()) + 1})
            print(f"{output}: {rgb.shape[1]}x{rgb.shape[0]}, {segments} asked, {labels.max() + 1} segments")
    manifest = {"generator": "tools/make_superpixel_fixtures.py", "scikit-image": skimage.__version__,
                "cases": cases}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
