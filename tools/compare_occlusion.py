#!/usr/bin/env python3
"""Times Elucidate's occlusion against Captum's in the same run, interleaved.

The call is the seed's: ResNet34 (tools/resnet.py, deterministic weights) at 224x224, the
deterministic input, the predicted class, window (3,15,15), stride (3,8,8), baseline 0,
16 perturbations per eval:

    Occlusion(model).attribute(x, strides=(3,8,8), sliding_window_shapes=(3,15,15),
                               baselines=0, target=t, perturbations_per_eval=16)

against three Elucidate runs (a release build): the seed's call with Elucidate's defaults
(``elucidate explain occlusion --window 3,15,15 --stride 3,8,8``: incremental evaluation, 64
copies per pass), the same with ``--perturbations-per-eval 16`` (Captum's batching), and the
plain full-recompute path with 16. Each round runs Captum, then the three; Elucidate's time
is the command's own ``elapsedSeconds`` (model loading included). Also prints the relative
L2 error of each Elucidate result against Captum's.

    swift build -c release --product elucidate
    python3 tools/compare_occlusion.py --elucidate .build/release/elucidate [--rounds 2] [--json]

``--accuracy`` measures accuracy instead of time, on weights and an input the tests never see:
a torch-seeded ResNet34 (``--seed``; torchvision's initialisation, batch-norm gammas and betas
drawn at random and running statistics calibrated on augmented copies of the photo, then
perturbed) on ``Tests/Fixtures/images/photo.torchvision.npy``. It runs the seed's call with
Captum in float32 and in float64 (``model.double()``, ``input.double()``: about 10 minutes on
two cores, cached in ``--work``), then Elucidate at each level (``ELUCIDATE_ISA``, which also
picks OpenBLAS's kernels), with Winograd on and off (``ELUCIDATE_WINOGRAD``), incremental and
full, and prints each one's relative L2 distance to Captum float32 and to float64, and the
mean and spread of its error over the windows (at the pixels only one window covers):

    python3 tools/compare_occlusion.py --accuracy [--work /tmp/occlusion-accuracy] \\
        [--levels avx512,avx2,scalar] [--elucidate other/elucidate --label before]

``--winograd-error`` emulates one 3x3 convolution layer in float32 with numpy (no Elucidate
involved): direct (im2col) against Winograd F(4x4, 3x3) with Elucidate's points 0, +-1, +-2
(and another point set), F(5x5, 3x3) and F(6x6, 3x3) with the transforms winograd.c runs
(``tools/winograd_transforms.py``), each against float64, on random ReLU activations and
He-normal weights. The ratio of the two errors is the Winograd factor of
``Tests/AttributionTests/OcclusionAccuracyTests.swift``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from captum.attr import Occlusion

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import resnet  # noqa: E402


def winograd_matrices(points, m=4, r=3):
    """Aᵀ (m×n), G (n×r), Bᵀ (n×n) of Winograd F(m, r) on ``points`` and infinity (Toom-Cook)."""
    from fractions import Fraction

    n = m + r - 1
    pts = [Fraction(p) for p in points]
    at, g = np.zeros((m, n)), np.zeros((n, r))
    for j, p in enumerate(pts):
        at[:, j] = [float(p ** i) for i in range(m)]
        norm = Fraction(1)
        for q in pts:
            if q != p:
                norm *= p - q
        g[j] = [float(p ** k / norm) for k in range(r)]
    at[m - 1, n - 1], g[n - 1, r - 1] = 1, 1
    # Bᵀ solves Σ_j Aᵀ[i,j] G[j,k] Bᵀ[j,l] = [l = i + k] for every i, k, l.
    rows, rhs = [], []
    for i in range(m):
        for k in range(r):
            for l in range(n):
                row = np.zeros((n, n))
                row[:, l] = at[i] * g[:, k]
                rows.append(row.ravel())
                rhs.append(1.0 if l == i + k else 0.0)
    bt = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0].reshape(n, n)
    return at, g, np.round(bt * 1e9) / 1e9


def winograd_error() -> None:
    """One layer's float32 error, direct against Winograd F(m×m, 3×3) (see --winograd-error)."""
    import winograd_transforms

    rng = np.random.default_rng(0)

    def direct(x, w, dtype):
        c, h, wd = x.shape
        cols = np.stack([x[:, r:r + h - 2, s:s + wd - 2] for r in range(3) for s in range(3)], 1).astype(dtype)
        return (w.reshape(w.shape[0], -1).astype(dtype) @ cols.reshape(c * 9, -1)).reshape(w.shape[0], h - 2, wd - 2)

    def winograd(x, w, at, g, bt, dtype):
        m, n = at.shape
        c, h, wd = x.shape
        th, tw = (h - 2) // m, (wd - 2) // m
        u = (g @ w.astype(np.float64) @ g.T).astype(dtype)  # weights transformed once, rounded once
        tiles = np.stack([np.stack([x[:, m * a:m * a + n, m * b:m * b + n] for b in range(tw)], 1)
                          for a in range(th)], 1).astype(dtype)
        btd, atd = bt.astype(dtype), at.astype(dtype)
        v = np.einsum("ij,ctsjl->ctsil", btd, tiles).astype(dtype)
        v = np.einsum("ctsil,kl->ctsik", v, btd).astype(dtype)
        # The n² products over the channels, each one float32 matrix product (sgemm).
        prod = np.empty((w.shape[0], th, tw, n, n), dtype)
        for i in range(n):
            for k in range(n):
                prod[..., i, k] = (u[:, :, i, k] @ v[..., i, k].reshape(c, -1)).reshape(-1, th, tw)
        y = np.einsum("ij,otsjl->otsil", atd, prod).astype(dtype)
        y = np.einsum("otsil,kl->otsik", y, atd).astype(dtype)
        return y.transpose(0, 1, 3, 2, 4).reshape(w.shape[0], m * th, m * tw)

    def exact(points, m):
        at, g, bt = winograd_transforms.matrices([winograd_transforms.F(p) for p in points], m)
        return tuple(np.array([[float(v) for v in row] for row in a]) for a in (at, g, bt))

    # Elucidate's three tiles (F(5×5) and F(6×6) in the exact form winograd.c runs), and two
    # other F(4×4) point sets for comparison.
    sets = {"F(4x4) 0,±1,±2 (Elucidate's)": winograd_matrices((0, 1, -1, 2, -2)),
            "F(4x4) 0,±1,±1/2": winograd_matrices((0, 1, -1, 0.5, -0.5)),
            "F(5x5) ±1,±2,±1/2 (Elucidate's)": exact(winograd_transforms.POINTS[5], 5),
            "F(6x6) 0,±1,±2,±1/2 (Elucidate's)": exact(winograd_transforms.POINTS[6], 6)}
    for channels in (64, 128, 256):
        size = 60  # a multiple of every tile
        x = np.maximum(rng.normal(0.2, 1, (channels, size + 2, size + 2)), 0).astype(np.float32)
        x[:, [0, -1], :] = 0
        x[:, :, [0, -1]] = 0
        w = rng.normal(0, np.sqrt(2 / (9 * channels)), (channels, channels, 3, 3)).astype(np.float32)
        reference = direct(x.astype(np.float64), w.astype(np.float64), np.float64)
        rms = np.sqrt((reference ** 2).mean())

        def error(y):
            return float(np.sqrt(((y.astype(np.float64) - reference) ** 2).mean()) / rms)

        base = error(direct(x, w, np.float32))
        print(f"C={channels} {size}x{size}: direct {base:.2e}")
        for label, (at, g, bt) in sets.items():
            e = error(winograd(x, w, at, g, bt, np.float32))
            print(f"    Winograd {label}: {e:.2e} ({e / base:.1f}x)")


def seeded_resnet34(seed: int) -> torch.nn.Module:
    """A ResNet34 that is not the tests' deterministic one, with realistic batch norms."""
    from torch import nn

    torch.manual_seed(seed)
    model = resnet.build("resnet34", 1000)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")  # torchvision's
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.2, 1.2)
            m.bias.data.normal_(0, 0.2)
    x = torch.from_numpy(np.load(HERE.parent / "Tests" / "Fixtures" / "images" / "photo.torchvision.npy"))
    batch = torch.cat([x, x.flip(3), x.roll(17, 2), x.roll(-31, 3), 0.7 * x, torch.randn(1, 3, 224, 224),
                       x.transpose(2, 3), x.flip(2)])
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(batch)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.mul_(torch.exp(0.3 * torch.randn_like(m.running_var)))
                m.running_mean.add_(0.1 * m.running_var.sqrt() * torch.randn_like(m.running_mean))
    return model.eval()


def accuracy(args) -> None:
    """Elucidate's occlusion against Captum float32 and float64 at each level (see --accuracy)."""
    import itertools
    import os

    from safetensors.torch import save_file

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    model = seeded_resnet34(args.seed)
    weights = work / f"seeded_resnet34_{args.seed}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights), metadata={"format": "pt"})
    x = torch.from_numpy(np.load(HERE.parent / "Tests" / "Fixtures" / "images" / "photo.torchvision.npy"))
    np.save(work / "x.npy", x.numpy())
    with torch.no_grad():
        target = int(model(x).argmax(dim=1)[0])
    kwargs = {"strides": (3, 8, 8), "sliding_window_shapes": (3, 15, 15), "baselines": 0, "target": target,
              "perturbations_per_eval": 16}
    references = {}
    for name, dtype in [("float32", torch.float32), ("float64", torch.float64)]:
        cached = work / f"captum_{args.seed}_{name}.npy"
        if not cached.exists():
            start = time.perf_counter()
            with torch.no_grad():
                a = Occlusion(model.to(dtype)).attribute(x.to(dtype), **kwargs)
            np.save(cached, a.numpy())
            print(f"Captum {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        references[name] = np.load(cached).astype(np.float64)
    model.float()
    reference64 = references["float64"]

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    def per_window(a: np.ndarray) -> str:
        # Pixels (8k+7, 8l+7) are covered by window (k, l) alone: their value is its F(x) - F(x').
        error = (a - reference64)[0, 0, 7::8, 7::8]
        return f"error over windows: mean {error.mean():+.2e}, spread {error.std():.2e}"

    print(f"seeded ResNet34 (seed {args.seed}), photo, target {target}")
    print(f"Captum float32: to float64 {rel(references['float32'], reference64):.3e}; "
          f"{per_window(references['float32'])}")
    for level, winograd, evaluation in itertools.product(args.levels.split(","), ["1", "0"], ["incremental", "full"]):
        out = work / f"{args.label}_{level}_w{winograd}_{evaluation}.npy"
        command = [str(args.elucidate), "explain", "occlusion", "--model", str(weights), "--input-tensor", str(work / "x.npy"),
                   "--target", str(target), "--window", "3,15,15", "--stride", "3,8,8", "--evaluation", evaluation,
                   "--attributions", str(out), "--quiet"]
        environment = {**os.environ, "ELUCIDATE_ISA": level, "ELUCIDATE_WINOGRAD": winograd}
        environment.pop("OPENBLAS_CORETYPE", None)
        start = time.perf_counter()
        result = subprocess.run(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            print(f"{level} winograd={winograd} {evaluation}: failed: {result.stderr.strip()}")
            continue
        a = np.load(out).astype(np.float64)
        print(f"{args.label} {level:6s} winograd={'on ' if winograd == '1' else 'off'} {evaluation:11s}: "
              f"to Captum float32 {rel(a, references['float32']):.3e}, to float64 {rel(a, reference64):.3e}; "
              f"{per_window(a)} ({time.perf_counter() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elucidate", type=Path, default=HERE.parent / ".build" / "release" / "elucidate")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--accuracy", action="store_true", help="measure accuracy against Captum float64 instead of time")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "occlusion-accuracy",
                        help="--accuracy: folder for the weights and the cached Captum results")
    parser.add_argument("--seed", type=int, default=0, help="--accuracy: torch.manual_seed of the weights")
    parser.add_argument("--levels", default="avx512,avx2,scalar", help="--accuracy: ELUCIDATE_ISA levels")
    parser.add_argument("--label", default="elucidate", help="--accuracy: names this binary's outputs")
    parser.add_argument("--winograd-error", action="store_true", help="emulate one layer's float32 error, direct vs Winograd")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.winograd_error:
        winograd_error()
        return
    if args.accuracy:
        accuracy(args)
        return

    work = Path(tempfile.mkdtemp(prefix="compare-occlusion-"))
    weights, _, model, x, target = resnet.comparison_case(work, args.size)

    def captum() -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        with torch.no_grad():
            a = Occlusion(model).attribute(x, strides=(3, 8, 8), sliding_window_shapes=(3, 15, 15), baselines=0,
                                           target=target, perturbations_per_eval=16)
        return time.perf_counter() - start, a.numpy()

    runs = {"seed": [], "incremental": ["--perturbations-per-eval", "16"],
            "full": ["--evaluation", "full", "--perturbations-per-eval", "16"]}

    def elucidate(name: str) -> tuple[float, float, np.ndarray]:
        out = work / f"{name}.npy"
        command = [str(args.elucidate), "explain", "occlusion", "--model", str(weights), "--input-tensor", str(work / "x.npy"),
                   "--attributions", str(out), "--target", str(target), "--window", "3,15,15", "--stride", "3,8,8",
                   "--json", "--quiet"] + runs[name]
        start = time.perf_counter()
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"elucidate failed: {result.stderr}")
        return json.loads(result.stdout)["elapsedSeconds"], wall, np.load(out)

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    times = {"captum": [], **{name: [] for name in runs}}
    errors = {}
    for r in range(args.rounds):
        t, reference = captum()
        times["captum"].append(t)
        for name in runs:
            elapsed, wall, attributions = elucidate(name)
            times[name].append(elapsed)
            errors[name] = rel(attributions, reference)
        print(f"round {r + 1}: captum {t:.2f} s, " + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in runs),
              file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {"captum_s": med["captum"], "rounds": args.rounds, "threads": args.threads, "torch": torch.__version__,
              "captum": __import__("captum").__version__}
    for name in runs:
        report[f"{name}_s"] = med[name]
        report[f"speedup_{name}"] = med["captum"] / med[name]
        report[f"rel_l2_{name}"] = errors[name]
    if args.json:
        print(json.dumps(report))
    else:
        labels = {"seed": "seed call (defaults: incremental, 64 per pass)", "incremental": "incremental, 16 per pass",
                  "full": "full recompute, 16 per pass"}
        print(f"Captum (16 per pass) {med['captum']:.2f} s")
        for name in runs:
            print(f"Elucidate {labels[name]}: {med[name]:.2f} s, {report[f'speedup_{name}']:.2f}x faster; "
                  f"rel L2 vs Captum {errors[name]:.2e}")


if __name__ == "__main__":
    main()
