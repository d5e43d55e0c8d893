#!/usr/bin/env python3
"""Elucidate vs PyTorch: ResNet forward-pass time, measured in the same run, interleaved.

For each batch size, every round runs Elucidate's ``forward-timing`` (benchmarks/ForwardTiming)
and then PyTorch's timing (``tools/bench_torch.py``), each a fresh process that builds the same
network with the same deterministic weights, warms up, and times ``--runs`` forward passes.
Rounds alternate the engines (A B A B ...) so both share the machine's noise: another process
that steals a core during the run slows a neighbouring round of each, not all of one engine.

Each engine's figure is the median of its per-round medians; the ratio is Elucidate / PyTorch
(lower is better, 1.0 = as fast as PyTorch). The per-round paired ratios show the noise. The
target for ResNet34 batch 1 is a ratio <= 1.3 (``--check`` exits 1 when it is missed).

Both engines get the same thread count (``--threads``, default: every core). PyTorch runs its
own default kernels (oneDNN/MKL); Elucidate loads OpenBLAS itself (see the README).

Usage:
    python3 tools/compare_forward.py                          # builds forward-timing, 5 rounds x 20 runs
    python3 tools/compare_forward.py --rounds 3 --runs 10 --batch 1
    python3 tools/compare_forward.py --elucidate benchmarks/.build/release/forward-timing --json

If tools/bench_torch.py is missing, the PyTorch side is timed by this script itself
(``--torch-worker``), with tools/resnet.py's model and deterministic weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
BENCHMARKS = ROOT / "benchmarks"
DEFAULT_BINARY = BENCHMARKS / ".build" / "release" / "forward-timing"
TARGET_RATIO = 1.3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_forward_timing() -> Path:
    """Builds benchmarks/'s forward-timing in release (scratch path inside benchmarks/)."""
    command = ["swift", "build", "-c", "release", "--scratch-path", ".build", "--product", "forward-timing"]
    log(f"building forward-timing: (cd benchmarks && {' '.join(command)})")
    result = subprocess.run(command, cwd=BENCHMARKS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        log(result.stdout[-4000:])
        sys.exit(f"compare_forward: building forward-timing failed (exit {result.returncode})")
    if not DEFAULT_BINARY.exists():
        sys.exit(f"compare_forward: build succeeded but {DEFAULT_BINARY} is missing")
    return DEFAULT_BINARY


def last_json_line(text: str, what: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{what} printed no JSON line:\n{text[-2000:]}")


def run(command: list[str], what: str) -> list[dict]:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")
    lines = [json.loads(l) for l in result.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"{what} printed no JSON line:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return lines


def time_elucidate(binary: Path, arch: str, batch: int, runs: int, warmup: int, threads: int) -> dict:
    command = [str(binary), "--arch", arch, "--batch", str(batch), "--repeat", str(runs),
               "--warmup", str(warmup), "--threads", str(threads)]
    return run(command, "forward-timing")[-1]


def time_pytorch(arch: str, batch: int, runs: int, warmup: int, threads: int) -> dict:
    bench = TOOLS / "bench_torch.py"
    if bench.exists():
        command = [sys.executable, str(bench), "--json", "--arch", arch, "--batch", str(batch),
                   "--repeat", str(runs), "--warmup", str(warmup), "--threads", str(threads)]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--torch-worker", "--arch", arch,
                   "--batch", str(batch), "--runs", str(runs), "--warmup", str(warmup), "--threads", str(threads)]
    lines = [line for line in run(command, "PyTorch timing") if line.get("batch") == batch]
    if not lines:
        raise RuntimeError("PyTorch timing printed no line for batch %d" % batch)
    return lines[-1]


def torch_worker(args: argparse.Namespace) -> None:
    """Fallback PyTorch timing (when tools/bench_torch.py is absent): one JSON line."""
    import torch

    sys.path.insert(0, str(TOOLS))
    import resnet  # tools/resnet.py: torchvision-identical model + deterministic weights

    torch.set_num_threads(args.threads)
    model = resnet.deterministic_model(args.arch)
    x = torch.from_numpy(resnet.deterministic_input("input", (args.batch, 3, 224, 224)))
    times = []
    with torch.no_grad():
        for _ in range(args.warmup):
            model(x)
        for _ in range(args.runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000.0)
    print(json.dumps({"engine": "pytorch", "arch": args.arch, "batch": args.batch,
                      "threads": torch.get_num_threads(), "median_ms": round(statistics.median(times), 3),
                      "min_ms": round(min(times), 3), "runs": len(times), "torch": torch.__version__}), flush=True)


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elucidate", type=Path, default=None,
                        help="forward-timing binary (default: build benchmarks/ in release and use "
                             "benchmarks/.build/release/forward-timing)")
    parser.add_argument("--no-build", action="store_true",
                        help="use the existing benchmarks/.build/release/forward-timing without rebuilding")
    parser.add_argument("--arch", default="resnet34")
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1 and 8)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per batch size (default 5)")
    parser.add_argument("--runs", type=int, default=20, help="timed forward passes per round and engine (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes at the start of each round (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for both engines (default: every core)")
    parser.add_argument("--json", action="store_true", help="also print one JSON summary line per batch size")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when the batch-1 ratio is above the target ({TARGET_RATIO})")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1 or args.runs < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--rounds, --runs and --threads must be >= 1, --warmup >= 0")

    if args.torch_worker:
        args.batch = (args.batch or [1])[0]
        torch_worker(args)
        return 0

    batches = args.batch or [1, 8]
    if args.elucidate is not None:
        binary = args.elucidate.resolve()
    elif args.no_build:
        binary = DEFAULT_BINARY
    else:
        binary = build_forward_timing()
    if not binary.exists():
        sys.exit(f"compare_forward: no forward-timing binary at {binary}")

    torch_source = "tools/bench_torch.py" if (TOOLS / "bench_torch.py").exists() else "inline (tools/resnet.py)"
    print(f"{args.arch} 224x224, {args.threads} threads, {args.rounds} rounds x {args.runs} runs "
          f"(warmup {args.warmup}) per engine, interleaved; PyTorch timing: {torch_source}")
    print(f"load average at start: {load_average()}")
    summaries = []
    missed = False
    for batch in batches:
        eluc_rounds, torch_rounds = [], []
        info = {}
        for r in range(args.rounds):
            e = time_elucidate(binary, args.arch, batch, args.runs, args.warmup, args.threads)
            t = time_pytorch(args.arch, batch, args.runs, args.warmup, args.threads)
            eluc_rounds.append(e)
            torch_rounds.append(t)
            info = {"isa": e.get("isa"), "blas_core": e.get("blas_core"), "torch": t.get("torch")}
            log(f"  batch {batch} round {r + 1}/{args.rounds}: elucidate {e['median_ms']:.2f} ms, "
                f"pytorch {t['median_ms']:.2f} ms, ratio {e['median_ms'] / t['median_ms']:.3f}")
        e_meds = [x["median_ms"] for x in eluc_rounds]
        t_meds = [x["median_ms"] for x in torch_rounds]
        e_med, t_med = statistics.median(e_meds), statistics.median(t_meds)
        ratio = e_med / t_med
        paired = [a / b for a, b in zip(e_meds, t_meds)]
        summary = {
            "arch": args.arch, "batch": batch, "threads": args.threads, "rounds": args.rounds, "runs": args.runs,
            "elucidate_median_ms": round(e_med, 3), "elucidate_min_ms": round(min(x["min_ms"] for x in eluc_rounds), 3),
            "pytorch_median_ms": round(t_med, 3), "pytorch_min_ms": round(min(x["min_ms"] for x in torch_rounds), 3),
            "ratio": round(ratio, 3), "paired_ratio_min": round(min(paired), 3),
            "paired_ratio_max": round(max(paired), 3), **info,
        }
        summaries.append(summary)
        verdict = ""
        if batch == 1:
            ok = ratio <= TARGET_RATIO
            missed = missed or not ok
            verdict = f"  [target <= {TARGET_RATIO}: {'met' if ok else 'MISSED'}]"
        print(f"batch {batch}: Elucidate median {e_med:8.2f} ms (min {summary['elucidate_min_ms']:.2f})   "
              f"PyTorch median {t_med:8.2f} ms (min {summary['pytorch_min_ms']:.2f})   "
              f"ratio {ratio:.3f} (rounds {min(paired):.3f}-{max(paired):.3f}){verdict}")
        print(f"         per-round medians: elucidate {', '.join(f'{v:.1f}' for v in e_meds)}; "
              f"pytorch {', '.join(f'{v:.1f}' for v in t_meds)}")
        if max(paired) > 1.25 * min(paired):
            print("         warning: the per-round ratios disagree by more than 25 %: something else was "
                  "using the CPU during some rounds (see `uptime`); rerun on a quiet machine")
    print(f"load average at end: {load_average()}")
    if args.json:
        for summary in summaries:
            print(json.dumps(summary))
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
