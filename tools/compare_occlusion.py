#!/usr/bin/env python3
"""Times Elucidate's occlusion against Captum's in the same run, interleaved.

The call is the seed's: ResNet34 (tools/resnet.py, deterministic weights) at 224x224, the
deterministic input, the predicted class, window (3,15,15), stride (3,8,8), baseline 0,
16 perturbations per eval:

    Occlusion(model).attribute(x, strides=(3,8,8), sliding_window_shapes=(3,15,15),
                               baselines=0, target=t, perturbations_per_eval=16)

against ``elucidate explain occlusion --evaluation full`` and ``--evaluation incremental``
(a release build). Each round runs Captum, then both Elucidate paths; Elucidate's time is
the command's own ``elapsedSeconds`` (model loading included). Also prints the relative L2
error of each Elucidate result against Captum's.

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

    def elucidate(evaluation: str) -> tuple[float, float, np.ndarray]:
        out = work / f"{evaluation}.npy"
        command = [str(args.elucidate), "explain", "occlusion", "--model", str(weights), "--input-tensor", str(work / "x.npy"),
                   "--attributions", str(out), "--target", str(target), "--window", "3,15,15", "--stride", "3,8,8",
                   "--perturbations-per-eval", "16", "--evaluation", evaluation, "--json", "--quiet"]
        start = time.perf_counter()
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"elucidate failed: {result.stderr}")
        return json.loads(result.stdout)["elapsedSeconds"], wall, np.load(out)

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    times = {"captum": [], "full": [], "incremental": []}
    errors = {}
    for r in range(args.rounds):
        t, reference = captum()
        times["captum"].append(t)
        for evaluation in ("full", "incremental"):
            elapsed, wall, attributions = elucidate(evaluation)
            times[evaluation].append(elapsed)
            errors[evaluation] = rel(attributions, reference)
        print(f"round {r + 1}: captum {t:.2f} s, full {times['full'][-1]:.2f} s, incremental {times['incremental'][-1]:.2f} s",
              file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {"captum_s": med["captum"], "full_s": med["full"], "incremental_s": med["incremental"],
              "speedup_full": med["captum"] / med["full"], "speedup_incremental": med["captum"] / med["incremental"],
              "rel_l2_full": errors["full"], "rel_l2_incremental": errors["incremental"], "rounds": args.rounds,
              "threads": args.threads, "torch": torch.__version__, "captum": __import__("captum").__version__}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"Captum {med['captum']:.2f} s; Elucidate full {med['full']:.2f} s ({report['speedup_full']:.2f}x), "
              f"incremental {med['incremental']:.2f} s ({report['speedup_incremental']:.2f}x); "
              f"rel L2 vs Captum: full {errors['full']:.2e}, incremental {errors['incremental']:.2e}")


if __name__ == "__main__":
    main()
