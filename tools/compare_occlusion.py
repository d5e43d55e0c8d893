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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elucidate", type=Path, default=HERE.parent / ".build" / "release" / "elucidate")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="compare-occlusion-"))
    weights = work / "resnet34.safetensors"
    subprocess.run([sys.executable, str(HERE / "export_safetensors.py"), "--deterministic", "resnet34",
                    "--num-classes", "1000", "-o", str(weights)], check=True, stdout=subprocess.DEVNULL)
    shape = (1, 3, args.size, args.size)
    x_np = resnet.deterministic_input("input", shape)
    np.save(work / "x.npy", x_np)
    model = resnet.deterministic_model("resnet34", 1000)
    x = torch.from_numpy(x_np)
    with torch.no_grad():
        target = int(model(x).argmax(dim=1)[0])

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
