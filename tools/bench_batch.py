#!/usr/bin/env python3
"""Times a whole folder explained by Elucidate's batch runner against a Captum loop, in one run.

The case: a folder of ``--images`` (default 64) images of 224x224 — the bundled
Resources/images drawn at 224x224 with a tint and a turn per image, half PNG, half JPEG
(quality 90), so every image differs and both decoders run — and ResNet18 (tools/resnet.py)
with the deterministic weights of DeterministicWeights.swift, 1000 classes, written by
tools/export_safetensors.py. Every image is explained for its predicted class.

The Captum loop is what a user would write, batched with the same batch size as Elucidate's
``--images-per-batch``: for each batch of ``--batch-size`` images, read them with Pillow,
preprocess as torchvision does (shorter side to 256, centre crop 224, ImageNet
normalisation), take the predicted classes, run the method, and save each image's
attributions with ``np.save``. Its time includes building the model and loading the weights,
as Elucidate's includes starting the process and loading the model.

The methods, with the same settings on both sides:

* ``saliency``: ``Saliency(model).attribute(x, target=t)`` (absolute gradient) —
  ``elucidate explain saliency``;
* ``integrated-gradients``: 50 steps, zero baseline, 16 path points per pass per image
  (``internal_batch_size=16 * len(x)``) — ``--steps 50 --internal-batch-size 16``;
* ``occlusion``: window 3x32x32, stride 3x16x16, zero baseline, 16 occluded copies per pass
  (``perturbations_per_eval=16``) — ``--window 3,32,32 --stride 3,16,16
  --perturbations-per-eval 16`` (Elucidate's default incremental evaluation, which is exact).

Elucidate runs ``elucidate explain METHOD --model W FOLDER --out-dir OUT --images-per-batch B
--quiet`` (its forward-only methods put B images through the network together; gradient
methods run image by image, their path points batched). Both use every core (torch:
``torch.set_num_threads(os.cpu_count())`` or ``--threads``; Elucidate: all cores, or
``--threads``). Runs are interleaved, after one untimed warm-up of each unless
``--no-warmup``; the medians, the images per second and the ratio Captum time / Elucidate
time (above 1: Elucidate is faster) are printed per method.

Usage (the pinned env, tools/requirements.txt, and a release build):

    swift build -c release --product elucidate
    /work/venv/bin/python tools/bench_batch.py [--runs 3] [--images 64] [--batch-size 8] \\
        [--methods saliency,integrated-gradients,occlusion] [--elucidate .build/release/elucidate]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from captum.attr import IntegratedGradients, Occlusion, Saliency
from PIL import Image, ImageOps
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import resnet  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)

# Per method: Elucidate's options, and the Captum call on (model, x, targets).
METHODS = {
    "saliency": ([], lambda model, x, t: Saliency(model).attribute(x, target=t)),
    "integrated-gradients": (
        ["--steps", "50", "--internal-batch-size", "16"],
        lambda model, x, t: IntegratedGradients(model).attribute(x, target=t, n_steps=50,
                                                                 internal_batch_size=16 * len(x))),
    "occlusion": (
        ["--window", "3,32,32", "--stride", "3,16,16", "--perturbations-per-eval", "16"],
        lambda model, x, t: Occlusion(model).attribute(x, target=t, sliding_window_shapes=(3, 32, 32),
                                                       strides=(3, 16, 16), perturbations_per_eval=16)),
}


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` distinct 224x224 images from the bundled ones: tinted, some turned, half JPEG."""
    bundled = sorted((ROOT / "Resources" / "images").glob("*.png"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        gray = Image.open(bundled[k % len(bundled)]).convert("L").resize((224, 224), Image.BILINEAR)
        dark = (40 + 23 * k % 120, 30 + 37 * k % 100, 20 + 53 * k % 110)
        image = ImageOps.colorize(gray, black=dark, white=(255 - k % 50, 250 - 3 * k % 60, 245 - 7 * k % 70))
        image = image.rotate(90 * (k // len(bundled) % 4))
        path = folder / (f"image{k:03d}.png" if k % 2 == 0 else f"image{k:03d}.jpg")
        image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)
        paths.append(path)
    return paths


def preprocess(path: Path) -> np.ndarray:
    """torchvision's Resize(256), CenterCrop(224), ToTensor, Normalize, with Pillow: (3, 224, 224)."""
    image = Image.open(path).convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255
    return (array - MEAN) / STD


def captum_loop(method: str, weights: Path, arch: str, images: list[Path], batch: int, out: Path) -> None:
    """The user's loop: the model loaded, then each batch read, explained and saved."""
    model = resnet.build(arch, 1000)
    model.load_state_dict(load_file(str(weights)))
    model.eval()
    attribute = METHODS[method][1]
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(images), batch):
        paths = images[start:start + batch]
        x = torch.from_numpy(np.stack([preprocess(p) for p in paths]))
        with torch.no_grad():
            targets = model(x).argmax(dim=1)
        attributions = attribute(model, x.requires_grad_(), targets).detach().numpy()
        for path, row in zip(paths, attributions):
            np.save(out / (path.stem + ".npy"), row[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--no-warmup", action="store_true", help="no untimed first run")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch on both sides (default 8)")
    parser.add_argument("--arch", default="resnet18", choices=sorted(resnet.ARCHS))
    parser.add_argument("--methods", default="saliency,integrated-gradients,occlusion")
    parser.add_argument("--threads", type=int, default=None, help="threads for both (default: all cores)")
    parser.add_argument("--elucidate", default=str(ROOT / ".build" / "release" / "elucidate"))
    parser.add_argument("--work", type=Path, help="folder for the images, weights and outputs (default: temporary)")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if unknown := [m for m in methods if m not in METHODS]:
        parser.error(f"unknown methods {unknown} (known: {', '.join(METHODS)})")
    if not Path(args.elucidate).is_file():
        parser.error(f"no elucidate at {args.elucidate}: swift build -c release --product elucidate")
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    if args.work is None:
        with tempfile.TemporaryDirectory(prefix="bench_batch_") as work:
            bench(args, methods, threads, Path(work))
    else:
        bench(args, methods, threads, args.work)


def bench(args: argparse.Namespace, methods: list[str], threads: int, work: Path) -> None:
    weights = work / f"{args.arch}.safetensors"
    subprocess.run([sys.executable, str(HERE / "export_safetensors.py"), "--deterministic", args.arch,
                    "--num-classes", "1000", "-o", str(weights)], check=True, stdout=subprocess.DEVNULL)
    images = make_images(work / "images", args.images)
    print(f"{args.images} images 224x224 (PNG and JPEG), {args.arch}, batch size {args.batch_size}, "
          f"{threads} threads, torch {torch.__version__}, captum {__import__('captum').__version__}", flush=True)

    def run_captum(method: str) -> float:
        start = time.perf_counter()
        captum_loop(method, weights, args.arch, images, args.batch_size, work / "captum" / method)
        return time.perf_counter() - start

    def run_elucidate(method: str) -> float:
        command = [args.elucidate, "explain", method, "--model", str(weights), str(work / "images"),
                   "--out-dir", str(work / "elucidate" / method), "--images-per-batch", str(args.batch_size),
                   "--threads", str(threads), "--quiet"] + METHODS[method][0]
        start = time.perf_counter()
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"elucidate failed ({result.returncode}): {result.stderr.strip()}")
        return elapsed

    for method in methods:
        if not args.no_warmup:
            run_captum(method)
            run_elucidate(method)
        times: dict[str, list[float]] = {"captum": [], "elucidate": []}
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            times["captum"].append(run_captum(method))
            times["elucidate"].append(run_elucidate(method))
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        for name, ts in times.items():
            print(f"{method} {name}: median {medians[name]:.2f} s ({args.images / medians[name]:.2f} images/s) "
                  f"over {len(ts)} runs ({', '.join(f'{t:.2f}' for t in ts)})", flush=True)
        print(f"{method} ratio captum / elucidate time: {medians['captum'] / medians['elucidate']:.2f}", flush=True)


if __name__ == "__main__":
    main()
