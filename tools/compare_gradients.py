#!/usr/bin/env python3
"""Times Elucidate's gradient methods against Captum's in the same run, interleaved.

The model is ResNet34 (tools/resnet.py, deterministic weights, 1000 classes) at 224x224 on the
deterministic input, explaining the predicted class. Cases (``--cases``, comma-separated):

    ig50      IntegratedGradients(model).attribute(x, target=t, n_steps=50)
    ig200     the seed notebook's call: n_steps=200
    nt        the seed's noise tunnel: NoiseTunnel(IntegratedGradients(model)).attribute(
                  x, n_samples=10, nt_type="smoothgrad_sq", target=t)   (50 steps each)
    saliency  Saliency(model).attribute(x, target=t)
    occlusion the seed notebook's occlusion call, Captum's default one perturbation per pass:
              Occlusion(model).attribute(x, strides=(3,8,8), sliding_window_shapes=(3,15,15),
                  baselines=0, target=t)
              (tools/compare_occlusion.py compares it with Captum's 16 per pass as well)

``--cases seed`` runs issue 16's four targets in one run: ig50, ig200, nt and occlusion.

Each round runs Captum's call (timed around ``attribute`` alone, as a notebook user sees it),
then ``elucidate explain ...`` (a release build; timed twice: the command's own
``elapsedSeconds``, model loading included, and the whole process's wall time). Captum runs
with its defaults (all path points in one batch); Elucidate with its own (16 per pass). Prints
medians, the ratio Captum / Elucidate (above 1: Elucidate is faster), the relative L2 error of
Elucidate's result against Captum's (the noise tunnel draws other noise: its error is large by
design) and both processes' peak memory.

``--isa avx2`` (or ``scalar``, ``avx512``) runs both sides as on a CPU of that level:
Elucidate with ``ELUCIDATE_ISA`` (its kernels and OpenBLAS's), PyTorch with
``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA`` and ``MKL_ENABLE_INSTRUCTIONS`` (its own
kernels, oneDNN's and MKL's). Both must be
set before torch loads, so this script sets them before importing torch.

    swift build -c release --product elucidate
    python3 tools/compare_gradients.py [--isa avx2] [--cases ig50] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# PyTorch's names for the levels: ATEN_CPU_CAPABILITY picks ATen's kernels, ONEDNN_MAX_CPU_ISA
# caps oneDNN's (convolutions), MKL_ENABLE_INSTRUCTIONS caps MKL's (the linear layer).
TORCH_ISA = {"scalar": ("default", "SSE41", "SSE4_2"), "avx2": ("avx2", "AVX2", "AVX2"),
             "avx512": ("avx512", "AVX512_CORE", "AVX512")}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elucidate", type=Path, default=HERE.parent / ".build" / "release" / "elucidate")
    parser.add_argument("--cases", default="ig50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--isa", choices=sorted(TORCH_ISA), help="run both sides as on a CPU of this level")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


ARGS = parse()
if ARGS.isa:
    (os.environ["ATEN_CPU_CAPABILITY"], os.environ["ONEDNN_MAX_CPU_ISA"],
     os.environ["MKL_ENABLE_INSTRUCTIONS"]) = TORCH_ISA[ARGS.isa]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency  # noqa: E402

sys.path.insert(0, str(HERE))
import resnet  # noqa: E402

CASES = {
    "ig50": (lambda m, x, t: IntegratedGradients(m).attribute(x, target=t, n_steps=50),
             ["integrated-gradients", "--steps", "50"]),
    "ig200": (lambda m, x, t: IntegratedGradients(m).attribute(x, target=t, n_steps=200),
              ["integrated-gradients", "--steps", "200"]),
    "nt": (lambda m, x, t: NoiseTunnel(IntegratedGradients(m)).attribute(x, nt_samples=10, nt_type="smoothgrad_sq",
                                                                          target=t),
           ["integrated-gradients", "--noise-tunnel", "smoothgrad-sq", "--nt-samples", "10", "--seed", "1"]),
    "saliency": (lambda m, x, t: Saliency(m).attribute(x, target=t), ["saliency"]),
    "occlusion": (lambda m, x, t: Occlusion(m).attribute(x, strides=(3, 8, 8), sliding_window_shapes=(3, 15, 15),
                                                         baselines=0, target=t),
                  ["occlusion", "--window", "3,15,15", "--stride", "3,8,8", "--baseline", "0"]),
}
GROUPS = {"seed": ["ig50", "ig200", "nt", "occlusion"]}


def main() -> None:
    args = ARGS
    cases = [c for name in args.cases.split(",") for c in GROUPS.get(name, [name])]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="compare-gradients-"))
    weights, _, model, x, target = resnet.comparison_case(work, args.size)
    environment = dict(os.environ)
    if args.isa:
        environment["ELUCIDATE_ISA"] = args.isa
        environment.pop("OPENBLAS_CORETYPE", None)  # let ELUCIDATE_ISA choose OpenBLAS's kernels too

    def captum(case: str) -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        a = CASES[case][0](model, x, target)
        return time.perf_counter() - start, a.detach().numpy()

    def elucidate(case: str) -> tuple[float, float, np.ndarray, dict]:
        out = work / f"{case}.npy"
        command = [str(args.elucidate), "explain", *CASES[case][1], "--model", str(weights), "--input-tensor",
                   str(work / "x.npy"), "--attributions", str(out), "--target", str(target), "--threads",
                   str(args.threads), "--json", "--quiet"]
        # The peak memory comes from GNU time: a child forked straight from this (large) Python
        # process would carry Python's resident size into its own ru_maxrss.
        peak_file = work / "peak.txt"
        wrapper = ["/usr/bin/time", "-f", "%M", "-o", str(peak_file)] if Path("/usr/bin/time").exists() else []
        start = time.perf_counter()
        result = subprocess.run(wrapper + command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=environment)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"elucidate failed: {result.stderr}")
        if wrapper:
            peaks.append(int(peak_file.read_text().split()[-1]) / 1024)  # KiB
        report = json.loads(result.stdout)
        return report["elapsedSeconds"], wall, np.load(out), report

    peaks: list[float] = []  # Elucidate's peak resident memory per run, MB

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    info = subprocess.run([str(args.elucidate), "info", "--json"], stdout=subprocess.PIPE, text=True, env=environment)
    info = json.loads(info.stdout) if info.returncode == 0 else {}
    report = {"rounds": args.rounds, "threads": args.threads, "torch": torch.__version__,
              "captum": __import__("captum").__version__, "isa": args.isa or "native",
              "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "elucidate_isa": info.get("instructionSet"), "openblas_core": info.get("blasCore"), "cases": {}}
    for case in cases:
        times = {"captum": [], "elucidate": [], "elucidate_wall": []}
        error = None
        peaks.clear()
        for r in range(args.rounds):
            t, reference = captum(case)
            elapsed, wall, attributions, _ = elucidate(case)
            times["captum"].append(t)
            times["elucidate"].append(elapsed)
            times["elucidate_wall"].append(wall)
            error = rel(attributions, reference)
            print(f"{case} round {r + 1}: captum {t:.2f} s, elucidate {elapsed:.2f} s (process {wall:.2f} s)",
                  file=sys.stderr)
        med = {k: statistics.median(v) for k, v in times.items()}
        report["cases"][case] = {
            "captum_s": med["captum"], "elucidate_s": med["elucidate"], "elucidate_process_s": med["elucidate_wall"],
            "speedup": med["captum"] / med["elucidate"], "speedup_process": med["captum"] / med["elucidate_wall"],
            "rel_l2_vs_captum": error, "elucidate_peak_rss_mb": max(peaks) if peaks else None}
    # ru_maxrss is in KiB on Linux: this process (Captum's calls) and each Elucidate run.
    report["captum_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    case_peaks = [r["elucidate_peak_rss_mb"] for r in report["cases"].values() if r["elucidate_peak_rss_mb"]]
    report["elucidate_peak_rss_mb"] = max(case_peaks) if case_peaks else None
    if args.json:
        print(json.dumps(report))
        return
    print(f"PyTorch {report['torch']} (CPU capability {report['torch_cpu_capability']}), Captum {report['captum']}; "
          f"Elucidate at {report['elucidate_isa']} (OpenBLAS {report['openblas_core']}); {args.threads} threads, "
          f"medians of {args.rounds} rounds")
    for case, r in report["cases"].items():
        case_peak = f"{r['elucidate_peak_rss_mb']:.0f} MB" if r["elucidate_peak_rss_mb"] else "not measured"
        print(f"{case}: Captum {r['captum_s']:.2f} s, Elucidate {r['elucidate_s']:.2f} s "
              f"(process {r['elucidate_process_s']:.2f} s): {r['speedup']:.2f}x "
              f"({r['speedup_process']:.2f}x by process); rel L2 vs Captum {r['rel_l2_vs_captum']:.1e}; "
              f"Elucidate's peak memory {case_peak}")
    peak = report["elucidate_peak_rss_mb"]
    print(f"peak memory: Captum process {report['captum_peak_rss_mb']:.0f} MB, "
          f"Elucidate {f'{peak:.0f} MB' if peak else 'not measured (no /usr/bin/time)'}")


if __name__ == "__main__":
    main()
