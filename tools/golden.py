#!/usr/bin/env python3
"""Regenerates the golden logits in Tests/Fixtures/golden/.

For each case, a torchvision-identical ResNet (tools/resnet.py) is loaded with the
deterministic weights of Tests/TestSupport/DeterministicWeights.swift, fed the deterministic
input ``DeterministicWeights.input(key: "input", shape: [N, 3, H, W])`` (NCHW, values in
[-2, 2)), and run in eval mode, float32, on the CPU with 2 threads. Written per case:

    <name>.logits.npy    float32, little endian, shape (N, num_classes), C order

and one ``manifest.json`` describing every case (arch, num_classes, input key and shape,
output file and shape, logit magnitudes, and ``torch_f32_vs_f64_rel_l2``: the relative L2
distance between these float32 logits and a float64 run of the same weights and input,
i.e. how far PyTorch's own float32 result is from exact).

Weights and inputs are not committed: the Swift tests regenerate them bit for bit.

Usage: python3 tools/golden.py [--out Tests/Fixtures/golden] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402

#: (arch, batch, height, width, num_classes)
CASES: list[tuple[str, int, int, int, int]] = [
    ("resnet18", 2, 224, 224, 1000),
    ("resnet34", 1, 224, 224, 1000),
    ("resnet50", 1, 224, 224, 1000),
    ("resnet34", 2, 160, 96, 37),
    ("resnet18", 1, 64, 48, 2),
]

#: fastai layout (tools/resnet.py fastai_model): (arch, batch, height, width, num_classes).
#: Written to fastai.json beside manifest.json, so the torchvision manifest stays as it was.
FASTAI_CASES: list[tuple[str, int, int, int, int]] = [
    ("resnet34", 2, 224, 224, 37),
    ("resnet18", 1, 64, 48, 2),
]

INPUT_KEY = "input"
THREADS = 2


def case_name(arch: str, batch: int, height: int, width: int, classes: int) -> str:
    """E.g. ``resnet18_n2_224x224_c1000`` (height x width)."""
    return f"{arch}_n{batch}_{height}x{width}_c{classes}"


def rel_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    """||actual - expected|| / ||expected||, in float64."""
    a = actual.astype(np.float64).ravel()
    e = expected.astype(np.float64).ravel()
    norm = np.linalg.norm(e)
    diff = np.linalg.norm(a - e)
    return float(diff / norm) if norm > 0 else float(diff)


def run_case(arch: str, batch: int, height: int, width: int, classes: int,
             layout: str = "torchvision") -> tuple[np.ndarray, dict]:
    if layout == "fastai":
        model = resnet.fastai_deterministic_model(arch, classes)
    else:
        model = resnet.deterministic_model(arch, classes)
    x = torch.from_numpy(resnet.deterministic_input(INPUT_KEY, (batch, 3, height, width)))
    with torch.no_grad():
        logits32 = model(x).numpy().astype(np.float32)
        # The same float32 weights and input, computed in float64.
        logits64 = model.double()(x.double()).numpy()
    flat = logits32.astype(np.float64)
    stats = {
        "logits_abs_max": float(np.abs(flat).max()),
        "logits_std": float(flat.std()),
        "logits_mean": float(flat.mean()),
        "argmax": [int(i) for i in logits32.argmax(axis=1)],
        "torch_f32_vs_f64_rel_l2": rel_l2(logits32, logits64),
    }
    if not np.isfinite(logits32).all():
        raise SystemExit(f"{arch}: non-finite logits")
    return logits32, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "Tests" / "Fixtures" / "golden")
    parser.add_argument("--only", nargs="*", help="case names to regenerate (default: all)")
    args = parser.parse_args()

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    previous = {}
    if args.only and manifest_path.exists():
        previous = {c["name"]: c for c in json.loads(manifest_path.read_text())["cases"]}

    cases = []
    for arch, batch, height, width, classes in CASES:
        name = case_name(arch, batch, height, width, classes)
        if args.only and name not in args.only:
            if name in previous:
                cases.append(previous[name])
            continue
        logits, stats = run_case(arch, batch, height, width, classes)
        output = f"{name}.logits.npy"
        np.save(args.out / output, np.ascontiguousarray(logits, dtype="<f4"))
        print(
            f"{name}: logits {tuple(logits.shape)} |max| {stats['logits_abs_max']:.4g} "
            f"std {stats['logits_std']:.4g} mean {stats['logits_mean']:.4g} "
            f"argmax {stats['argmax']}  float32 vs float64 rel L2 {stats['torch_f32_vs_f64_rel_l2']:.3g}"
        )
        cases.append({
            "name": name,
            "arch": arch,
            "num_classes": classes,
            "input": {"key": INPUT_KEY, "shape": [batch, 3, height, width]},
            "output": output,
            "output_shape": [batch, classes],
            **stats,
        })

    manifest = {
        "generator": "tools/golden.py",
        "description": "ResNet logits from PyTorch; weights are DeterministicWeights.parameter(key:shape:) "
                       "for every float tensor of the torchvision state dict (num_batches_tracked untouched), "
                       "inputs DeterministicWeights.input(key:shape:) in NCHW; eval mode, float32, CPU.",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": THREADS,
        "cases": cases,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(cases)} cases to {os.path.relpath(args.out)}")

    # fastai layout: nn.Sequential(body, create_head(...)), keys 0.* and 1.*.
    fastai_path = args.out / "fastai.json"
    previous = {}
    if args.only and fastai_path.exists():
        previous = {c["name"]: c for c in json.loads(fastai_path.read_text())["cases"]}
    fastai_cases = []
    for arch, batch, height, width, classes in FASTAI_CASES:
        name = "fastai_" + case_name(arch, batch, height, width, classes)
        if args.only and name not in args.only:
            if name in previous:
                fastai_cases.append(previous[name])
            continue
        logits, stats = run_case(arch, batch, height, width, classes, layout="fastai")
        output = f"{name}.logits.npy"
        np.save(args.out / output, np.ascontiguousarray(logits, dtype="<f4"))
        print(f"{name}: logits {tuple(logits.shape)} |max| {stats['logits_abs_max']:.4g} "
              f"argmax {stats['argmax']}  float32 vs float64 rel L2 {stats['torch_f32_vs_f64_rel_l2']:.3g}")
        fastai_cases.append({
            "name": name, "arch": arch, "layout": "fastai", "num_classes": classes,
            "input": {"key": INPUT_KEY, "shape": [batch, 3, height, width]},
            "output": output, "output_shape": [batch, classes], **stats,
        })
    fastai_path.write_text(json.dumps({
        **{k: v for k, v in manifest.items() if k != "cases"},
        "description": "fastai-layout ResNet logits (tools/resnet.py fastai_model: body nn.Sequential(conv1, bn1, "
                       "relu, maxpool, layer1..4) as 0.*, create_head as 1.*); body tensors are "
                       "DeterministicWeights.parameter of their torchvision names, head tensors of their own keys; "
                       "eval mode, float32, CPU.",
        "cases": fastai_cases,
    }, indent=2) + "\n")
    print(f"wrote {len(fastai_cases)} fastai cases to {os.path.relpath(fastai_path)}")


if __name__ == "__main__":
    main()
