#!/usr/bin/env python3
"""Times PyTorch's ResNet forward pass, for comparison with Elucidate in the same run.

The model is tools/resnet.py's torchvision-identical ResNet (default resnet34) with the
deterministic weights of DeterministicWeights.swift, in eval mode under torch.no_grad(),
float32, on the CPU. The input is ``deterministic_input("input", (batch, 3, H, W))`` (NCHW).
Each batch size gets ``--warmup`` untimed runs, then ``--repeat`` timed runs.

Threads: ``--threads`` if given, else $OMP_NUM_THREADS if set, else 2. The environment
is honoured as it is: this script never changes environment variables (so
OMP_NUM_THREADS, MKL_*, OPENBLAS_*, DNNL_*, ... set by the caller apply unchanged).

Output, one line per batch size: a sentence, or with ``--json`` a JSON object

    {"engine": "pytorch", "arch": "resnet34", "batch": 1, "height": 224, "width": 224,
     "threads": 2, "warmup": 3, "repeat": 10, "median_ms": ..., "min_ms": ...,
     "images_per_s": ..., "torch": "2.13.0+cpu"}

Usage: python3 tools/bench_torch.py [--json] [--repeat N] [--batch 1 --batch 8] [--arch resnet34]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402


def default_threads() -> int:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value.split(",")[0]))
        except ValueError:
            pass
    return 2


def time_forward(model: torch.nn.Module, x: torch.Tensor, warmup: int, repeat: int) -> list[float]:
    """Wall-clock milliseconds of ``repeat`` forward passes after ``warmup`` untimed ones."""
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        for _ in range(repeat):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet34", choices=sorted(resnet.ARCHS))
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1 and 8)")
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per batch size (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads (default: $OMP_NUM_THREADS, else 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    args = parser.parse_args()
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be >= 1 and --warmup >= 0")
    batches = args.batch or [1, 8]
    if any(b < 1 for b in batches):
        parser.error("--batch must be >= 1")

    threads = args.threads if args.threads is not None else default_threads()
    torch.set_num_threads(threads)
    model = resnet.deterministic_model(args.arch, args.num_classes)

    for batch in batches:
        x = torch.from_numpy(resnet.deterministic_input("input", (batch, 3, args.height, args.width)))
        times = time_forward(model, x, args.warmup, args.repeat)
        median, best = statistics.median(times), min(times)
        result = {
            "engine": "pytorch",
            "arch": args.arch,
            "batch": batch,
            "height": args.height,
            "width": args.width,
            "threads": torch.get_num_threads(),
            "warmup": args.warmup,
            "repeat": args.repeat,
            "median_ms": round(median, 3),
            "min_ms": round(best, 3),
            "images_per_s": round(batch * 1000.0 / median, 2),
            "torch": torch.__version__,
        }
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(f"pytorch {args.arch} batch {batch} {args.height}x{args.width}, {result['threads']} threads: "
                  f"median {median:.2f} ms, min {best:.2f} ms ({result['images_per_s']} images/s)", flush=True)


if __name__ == "__main__":
    main()
