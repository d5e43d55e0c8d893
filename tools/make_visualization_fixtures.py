#!/usr/bin/env python3
"""Creates the picture-drawing fixtures under Tests/Fixtures/visualization/ and the
colormap tables in Sources/Engine/Visualization/Colormap+Tables.swift, with Captum and
matplotlib (Captum, torch, numpy and Pillow as pinned in tools/requirements.txt; the committed
fixtures were made with matplotlib 3.11.2, which manifest.json records).

Deterministic: every array comes from formulas and fixed-seed generators.

What it writes (all under Tests/Fixtures/visualization/ unless said otherwise):

- `Colormap+Tables.swift` (in Sources/Engine/Visualization/): for each named colormap the
  256 RGB8 colours matplotlib draws with, i.e. `(cmap._lut[:256, :3] * 255).astype(uint8)`
  (what `cmap(x, bytes=True)` returns), as hex strings.
- `colormaps.npy`: float32 (M, 256, 3), matplotlib's float tables `cmap(np.arange(256))`
  for the M maps named in manifest.json["colormaps"] (named maps, reversed `_r` maps,
  Captum's red-white-green map and user gradients built with
  `LinearSegmentedColormap.from_list`).
- `colormap_bytes.npy`: int32 (M, 256, 3), the same maps as drawn, `cmap(np.arange(256), bytes=True)`.
- `colormap_lookup.npy`: float32 (L, 2, K, 3): for the L maps named in
  manifest.json["lookupColormaps"], the RGB8 colour matplotlib gives each of the K values in `colormap_lookup_values.npy` (float32 (K,)) under
  `Normalize(-1, 1)` (index 0) and `Normalize(0, 1)` (index 1), as Captum's heat maps do.
- `normalize/<case>.attr.npy`: float32 (3, H, W) attributions, and
  `normalize/<case>.normalized.npy`: float32 (4, P, H, W), Captum's `_normalize_attr` of
  `np.sum(np.transpose(attr, (1, 2, 0)), axis=2)` for the signs
  (all, positive, negative, absolute_value) and the outlier percentages in manifest.json;
  NaN where Captum raises (a map with nothing of that sign).
- `snapshot_photo.png` (32x32 RGB) and `snapshot_attr.npy` (1, 3, 32, 32): the small
  fixture the snapshot tests draw (the snapshots themselves, `snapshots/*.png`, are
  Elucidate's own drawings, written by the tests with ELUCIDATE_UPDATE_SNAPSHOTS=1 and
  looked at by a person).
- `captum_views/METHOD.SIGN.png`: Captum's own drawing of the snapshot fixture for each
  method x sign at 1:1 — `visualize_image_attr` into an axes filling a 32x32-pixel Agg
  figure — RGB (alpha-scaling is composited over the white axes there).
- `photo_ig.npy`: float32 (1, 3, 224, 224), Captum's IntegratedGradients for
  Tests/Fixtures/images/photo.jpg (torchvision preset) through a small hand-made model
  that scores "red minus blue" (see `RednessModel`), target 0, zero baseline, 64 steps.
- `reference/snapshot_captum.png` and docs/images/captum_*.png: Captum's own figures
  (visualize_image_attr / _multiple, matplotlib Agg) of the snapshot fixture and of
  photo_ig.npy, to compare with Elucidate's by eye (the README shows both).

Usage: python3 tools/make_visualization_fixtures.py
       python3 tools/make_visualization_fixtures.py --check-cli N [--elucidate PATH]
  The second form writes nothing: it draws N fresh random attribution maps (shapes, signs,
  outlier percentages and distributions drawn at random, seeded by the clock unless
  --seed is given) with the built `elucidate visualize --normalized-map` and prints the
  largest difference from Captum's `_normalize_attr`.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, Normalize  # noqa: E402
from PIL import Image  # noqa: E402

from captum.attr import IntegratedGradients  # noqa: E402
from captum.attr import visualization as viz  # noqa: E402
from captum.attr._utils.visualization import _normalize_attr  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "visualization")
DOCS = os.path.join(ROOT, "docs", "images")
TABLES = os.path.join(ROOT, "Sources", "Engine", "Visualization", "Colormap+Tables.swift")

NAMED_COLORMAPS = ["viridis", "plasma", "inferno", "magma", "cividis", "gray", "Greys", "Greens", "Reds",
                   "Blues", "Purples", "Oranges", "RdYlGn", "RdBu", "bwr", "coolwarm", "seismic", "hot",
                   "jet", "turbo"]
REVERSED_COLORMAPS = ["viridis_r", "Greens_r", "RdYlGn_r", "gray_r"]
# name as Elucidate spells it -> matplotlib colormap built by from_list
GRADIENTS = {
    "RdWhGn": LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"]),
    # The seed's custom map (Captum's torchvision tutorial).
    "0:#ffffff,0.25:#000000,1:#000000": LinearSegmentedColormap.from_list(
        "custom blue", [(0, "#ffffff"), (0.25, "#000000"), (1, "#000000")], N=256),
    "#000000,#ff8000,#ffffff": LinearSegmentedColormap.from_list("g2", ["#000000", "#ff8000", "#ffffff"]),
    "0:#0000ff,0.3:#00ff00,0.3:#ff0000,1:#ffff00": LinearSegmentedColormap.from_list(
        "g3", [(0, "#0000ff"), (0.3, "#00ff00"), (0.3, "#ff0000"), (1, "#ffff00")]),
    "0:#123456,0.1:#abcdef,0.77:#fedcba,1:#000000": LinearSegmentedColormap.from_list(
        "g4", [(0, "#123456"), (0.1, "#abcdef"), (0.77, "#fedcba"), (1, "#000000")]),
}
# The maps whose value -> colour lookup is checked (the lookup is one function for all).
LOOKUP_COLORMAPS = ["RdWhGn", "Greens", "Blues", "viridis"]
SIGNS = ["all", "positive", "negative", "absolute_value"]
OUTLIER_PERCS = [0, 2, 10, 100]


def save(path: str, array: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(array))


# MARK: colormaps

def byte_table(cmap) -> np.ndarray:
    return cmap(np.arange(cmap.N), bytes=True)[:, :3]


def write_swift_tables() -> None:
    lines = [
        "// Generated by tools/make_visualization_fixtures.py from matplotlib "
        f"{matplotlib.__version__}: do not edit.",
        "",
        "extension Colormap {",
        "    /// matplotlib's named colormaps as the RGB8 colours it draws with:",
        "    /// `(cmap._lut[:256, :3] * 255).astype(uint8)`, 256 colours of 6 hex digits each.",
        "    static let matplotlibTables: [(name: String, hex: String)] = [",
    ]
    for name in NAMED_COLORMAPS:
        table = byte_table(colormaps[name])
        assert table.shape == (256, 3)
        hexes = "".join(f"{r:02x}{g:02x}{b:02x}" for r, g, b in table)
        lines.append(f'        ("{name}", """')
        for i in range(0, len(hexes), 96):
            lines.append("            " + hexes[i:i + 96] + ("\\" if i + 96 < len(hexes) else ""))
        lines.append('            """),')
    lines += ["    ]", "}", ""]
    with open(TABLES, "w") as f:
        f.write("\n".join(lines))


def colormap_fixtures(manifest: dict) -> None:
    maps = [(n, colormaps[n]) for n in NAMED_COLORMAPS + REVERSED_COLORMAPS] + list(GRADIENTS.items())
    manifest["colormaps"] = [n for n, _ in maps]
    save(os.path.join(OUT, "colormaps.npy"),
         np.stack([c(np.arange(256))[:, :3] for _, c in maps]).astype(np.float32))
    save(os.path.join(OUT, "colormap_bytes.npy"), np.stack([byte_table(c) for _, c in maps]).astype(np.int32))
    # Values around every bin edge, the ends, and out-of-range values.
    edges = np.arange(-257, 258, dtype=np.float64) / 256.0
    values = np.concatenate([
        edges, np.nextafter(edges, -2), np.nextafter(edges, 2),
        np.linspace(-1.5, 1.5, 301), [0.0, -0.0, 1.0, -1.0, 1e-8, -1e-8, 0.99999994, 2.0, -2.0],
    ]).astype(np.float32)
    save(os.path.join(OUT, "colormap_lookup_values.npy"), values)
    lookup_maps = [(n, c) for n, c in maps if n in LOOKUP_COLORMAPS]
    manifest["lookupColormaps"] = [n for n, _ in lookup_maps]
    out = np.zeros((len(lookup_maps), 2, len(values), 3), dtype=np.float32)
    for m, (_, cmap) in enumerate(lookup_maps):
        for k, (vmin, vmax) in enumerate([(-1, 1), (0, 1)]):
            out[m, k] = cmap(Normalize(vmin, vmax)(values), bytes=True)[:, :3]
    save(os.path.join(OUT, "colormap_lookup.npy"), out)


# MARK: normalisation

def attribution_cases() -> dict:
    rng = np.random.default_rng(20240605)
    h, w = 24, 20
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    blob = np.exp(-((x - 6) ** 2 + (y - 8) ** 2) / 18.0) - 0.8 * np.exp(-((x - 14) ** 2 + (y - 16) ** 2) / 12.0)
    cases = {
        # signed, heavy-tailed, like real Integrated Gradients
        "laplace": rng.laplace(0.0, 1e-3, (3, h, w)),
        # mostly positive with a few large outliers
        "outliers": np.abs(rng.normal(0, 0.01, (3, h, w))) * np.where(rng.random((3, h, w)) < 0.03, 50, 1),
        # mostly negative
        "negative": -np.abs(rng.standard_normal((3, h, w))) + 0.05 * rng.standard_normal((3, h, w)),
        # smooth blobs of both signs
        "blobs": np.stack([blob * 0.5, blob * 0.3, blob * 0.2]) + 0.01 * rng.standard_normal((3, h, w)),
        # few distinct values: many ties and zeros
        "ties": rng.integers(-2, 3, (3, h, w)) * 0.25,
        # sparse: exact zeros almost everywhere
        "sparse": rng.standard_normal((3, h, w)) * (rng.random((3, h, w)) < 0.05),
        # nothing negative (Captum fails for sign negative)
        "nonnegative": np.abs(rng.standard_normal((3, h, w))),
        # all zero (Captum fails for every sign)
        "zero": np.zeros((3, h, w)),
        # large dynamic range
        "wide": rng.standard_normal((3, h, w)) * (10.0 ** rng.uniform(-6, 3, (3, h, w))),
        # a non-square map with one channel per sign pattern
        "tall": rng.standard_normal((3, 40, 7)),
    }
    return {k: v.astype(np.float32) for k, v in cases.items()}


def normalisation_fixtures(manifest: dict) -> None:
    entries = {}
    for name, attr in attribution_cases().items():
        summed = np.sum(np.transpose(attr, (1, 2, 0)), axis=2)
        out = np.full((len(SIGNS), len(OUTLIER_PERCS)) + summed.shape, np.nan, dtype=np.float32)
        failures = []
        for s, sign in enumerate(SIGNS):
            for p, perc in enumerate(OUTLIER_PERCS):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        with np.errstate(all="ignore"):
                            normed = _normalize_attr(summed, sign, perc)
                    if not np.all(np.isfinite(normed)):
                        raise AssertionError("non-finite result")
                    out[s, p] = normed
                except AssertionError:
                    failures.append(f"{sign}:{perc}")
        save(os.path.join(OUT, "normalize", f"{name}.attr.npy"), attr)
        save(os.path.join(OUT, "normalize", f"{name}.normalized.npy"), out)
        entries[name] = {"shape": list(attr.shape), "captumFails": failures}
    manifest["normalize"] = {"signs": SIGNS, "outlierPercentages": OUTLIER_PERCS, "cases": entries}


# MARK: pictures

def snapshot_fixture() -> tuple:
    """A 32x32 photo (a crop of photo.jpg's torchvision crop, downsized) and a map of both signs."""
    photo = Image.open(os.path.join(ROOT, "Tests", "Fixtures", "images", "photo.torchvision.png")).convert("RGB")
    small = photo.resize((32, 32), Image.BILINEAR)
    small.save(os.path.join(OUT, "snapshot_photo.png"))
    y, x = np.mgrid[0:32, 0:32].astype(np.float32)
    positive = np.exp(-((x - 22) ** 2 + (y - 11) ** 2) / 30.0)
    negative = -0.7 * np.exp(-((x - 8) ** 2 + (y - 9) ** 2) / 20.0)
    ripple = 0.15 * np.sin(x / 2.5) * np.cos(y / 3.0)
    base = positive + negative + ripple
    attr = np.stack([base * 0.5, base * 0.3, base * 0.2 + 0.02 * np.cos(x + y)])[None].astype(np.float32)
    save(os.path.join(OUT, "snapshot_attr.npy"), attr)
    return np.asarray(small), attr[0]


class RednessModel(torch.nn.Module):
    """Two logits from a normalised (torchvision) image: class 0 scores red minus blue,
    `mean(relu(r - (g + b) / 2 - 0.1)) - 0.5 * mean(b)` on the de-normalised pixels; class 1
    is its negative."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x * self.std + self.mean
        r, g, b = p[:, 0], p[:, 1], p[:, 2]
        red = torch.relu(r - (g + b) / 2 - 0.1).mean(dim=(1, 2)) - 0.5 * b.mean(dim=(1, 2))
        return torch.stack([red, -red], dim=1)


def photo_attributions() -> np.ndarray:
    x = torch.from_numpy(np.load(os.path.join(ROOT, "Tests", "Fixtures", "images", "photo.torchvision.npy")))
    ig = IntegratedGradients(RednessModel())
    attr = ig.attribute(x, target=0, n_steps=64).detach().numpy().astype(np.float32)
    save(os.path.join(OUT, "photo_ig.npy"), attr)
    return attr[0]


def captum_views(snapshot_photo, snapshot_attr) -> None:
    """Captum's own drawing of each method x sign at 1:1 (one map pixel = one picture pixel):
    visualize_image_attr into an axes that fills a 32x32-pixel Agg figure."""
    folder = os.path.join(OUT, "captum_views")
    os.makedirs(folder, exist_ok=True)
    hwc = np.transpose(snapshot_attr, (1, 2, 0))
    h, w = hwc.shape[:2]
    for method in ["heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling"]:
        for sign in SIGNS:
            if sign == "all" and method in ("masked_image", "alpha_scaling"):
                continue
            fig = Figure(figsize=(w / 100, h / 100), dpi=100)
            FigureCanvasAgg(fig)
            ax = fig.add_axes([0, 0, 1, 1])
            ax.set_axis_off()
            viz.visualize_image_attr(hwc, snapshot_photo, method=method, sign=sign, plt_fig_axis=(fig, ax),
                                     use_pyplot=False)
            fig.canvas.draw()
            rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
            name = f"{method}.{sign}.png".replace("_", "-")
            Image.fromarray(rgb, "RGB").save(os.path.join(folder, name))


def reference_figures(snapshot_photo, snapshot_attr, photo_attr) -> None:
    folder = os.path.join(OUT, "reference")
    os.makedirs(folder, exist_ok=True)
    hwc = np.transpose(snapshot_attr, (1, 2, 0))
    panels = [("heat_map", "all"), ("heat_map", "positive"), ("heat_map", "negative"),
              ("heat_map", "absolute_value"), ("blended_heat_map", "all"), ("blended_heat_map", "absolute_value"),
              ("masked_image", "positive"), ("alpha_scaling", "absolute_value")]
    fig, _ = viz.visualize_image_attr_multiple(
        hwc, snapshot_photo, [m for m, _ in panels], [s for _, s in panels],
        titles=[f"{m}\n{s}" for m, s in panels], show_colorbar=True, fig_size=(16, 3), use_pyplot=False)
    fig.savefig(os.path.join(folder, "snapshot_captum.png"), dpi=60)

    photo = np.asarray(Image.open(os.path.join(ROOT, "Tests", "Fixtures", "images", "photo.torchvision.png"))
                       .convert("RGB"))
    hwc = np.transpose(photo_attr, (1, 2, 0))
    fig, _ = viz.visualize_image_attr_multiple(
        hwc, photo, ["original_image", "heat_map", "blended_heat_map"], ["all", "positive", "absolute_value"],
        titles=["original image", "heat map (positive)", "blended (absolute value)"], show_colorbar=True,
        fig_size=(12, 4.6), use_pyplot=False)
    fig.savefig(os.path.join(DOCS, "captum_photo_ig.png"), dpi=70)

    seed_cmap = GRADIENTS["0:#ffffff,0.25:#000000,1:#000000"]
    fig, _ = viz.visualize_image_attr(hwc, photo, method="heat_map", cmap=seed_cmap, show_colorbar=True,
                                      sign="positive", outlier_perc=1, fig_size=(4, 4.6), use_pyplot=False)
    fig.savefig(os.path.join(DOCS, "captum_photo_ig_seed_cmap.png"), dpi=70)


def check_cli(count: int, elucidate: str, seed: int) -> None:
    """Elucidate's normalised maps against Captum's on maps no test has seen."""
    rng = np.random.default_rng(seed)
    worst, failures, compared = 0.0, 0, 0
    with tempfile.TemporaryDirectory() as folder:
        for i in range(count):
            c, h, w = int(rng.choice([1, 3])), int(rng.integers(1, 80)), int(rng.integers(1, 80))
            kind = rng.integers(0, 5)
            if kind == 0:
                attr = rng.laplace(0, 10.0 ** rng.uniform(-8, 2), (c, h, w))
            elif kind == 1:
                attr = rng.standard_normal((c, h, w)) * (rng.random((c, h, w)) < rng.uniform(0.01, 1))
            elif kind == 2:
                attr = rng.integers(-3, 4, (c, h, w)) * 10.0 ** rng.uniform(-4, 1)
            elif kind == 3:
                attr = np.abs(rng.standard_normal((c, h, w))) * rng.choice([-1, 1])
            else:
                attr = rng.standard_cauchy((c, h, w))
            attr = attr.astype(np.float32)
            perc = float(rng.choice([0, 0.5, 1, 2, 5, 10, 25, 50, 99, rng.uniform(0, 100)]))
            path = os.path.join(folder, "a.npy")
            np.save(path, attr)
            panels = "heat-map:all,heat-map:positive,heat-map:negative,heat-map:absolute-value"
            run = subprocess.run([elucidate, "visualize", path, "--panels", panels, "--outlier-perc", repr(perc),
                                  "--normalized-map", os.path.join(folder, "n.npy"), "--out",
                                  os.path.join(folder, "p.png")], capture_output=True, text=True)
            if run.returncode != 0:
                raise SystemExit(f"elucidate failed: {run.stderr}")
            ours = np.load(os.path.join(folder, "n.npy"))
            summed = np.sum(np.transpose(attr, (1, 2, 0)), axis=2)
            for s, sign in enumerate(SIGNS):
                try:
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore")
                        captum = _normalize_attr(summed, sign, perc)
                    if not np.all(np.isfinite(captum)):
                        raise AssertionError
                except (AssertionError, IndexError):
                    failures += 1
                    continue
                worst = max(worst, float(np.max(np.abs(ours[s] - captum))))
                compared += 1
    print(f"{compared} maps compared with Captum (seed {seed}), largest difference {worst:.3g}; "
          f"{failures} where Captum fails")
    if worst > 1e-6:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check-cli", type=int, metavar="N")
    parser.add_argument("--elucidate", default=os.path.join(ROOT, ".build", "debug", "elucidate"))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.check_cli:
        check_cli(args.check_cli, args.elucidate, args.seed if args.seed is not None else int(time.time()))
        return
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(DOCS, exist_ok=True)
    manifest: dict = {"matplotlib": matplotlib.__version__, "numpy": np.__version__}
    write_swift_tables()
    colormap_fixtures(manifest)
    normalisation_fixtures(manifest)
    snapshot_photo, snapshot_attr = snapshot_fixture()
    photo_attr = photo_attributions()
    captum_views(snapshot_photo, snapshot_attr)
    reference_figures(snapshot_photo, snapshot_attr, photo_attr)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
