#!/usr/bin/env python3
"""Times pytorch-grad-cam's ScoreCAM, and optionally an Elucidate command, in the same run.

The call: ResNet34 (tools/resnet.py, deterministic weights, 1000 classes) at 224x224, the
deterministic input (key ``input``), the predicted class, target layer ``layer4``, 32 masked
inputs per forward pass:

    cam = ScoreCAM(model=model, target_layers=[model.layer4]); cam.batch_size = 32
    cam(input_tensor=x, targets=[ClassifierOutputTarget(t)])

512 channels, so 512 forward passes of ResNet34 in 16 batches, plus one. torch uses every core
(``torch.set_num_threads(os.cpu_count())``, or ``--threads``). The time is the median of
``--runs`` runs after one warm-up run.

``--elucidate`` takes a shell command, run with ``subprocess`` (``shell=True``) as many times
and timed by wall clock; it may use ``{weights}`` (a safetensors file of the same weights,
written by ``tools/export_safetensors.py``), ``{input}`` (the input as .npy) and ``{target}``,
which the script fills in. It prints both medians and the ratio Elucidate / PyTorch.

Needs the CAM venv (``tools/requirements-cam.txt``):

    /work/venv-cam/bin/python tools/bench_cam.py [--runs 3] \\
        [--elucidate ".build/release/elucidate explain score-cam --model {weights} \\
                      --input-tensor {input} --target {target} --layer layer4 --batch-size 32 --quiet"]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # ScoreCAM's per-batch progress bars

import torch  # noqa: E402
from pytorch_grad_cam import ScoreCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import resnet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (after one warm-up run)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--elucidate", help="shell command to time; may use {weights}, {input}, {target}")
    parser.add_argument("--work", type=Path, help="directory for the weights and input (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.work is None:
        with tempfile.TemporaryDirectory(prefix="bench_cam_") as work:
            bench(args, Path(work))
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        bench(args, args.work)


def bench(args: argparse.Namespace, work: Path) -> None:
    if args.elucidate:
        weights, input_path, model, x, target = resnet.comparison_case(work, args.size)
    else:
        weights = input_path = None
        model = resnet.deterministic_model("resnet34", 1000)
        x = torch.from_numpy(resnet.deterministic_input("input", (1, 3, args.size, args.size)))
        with torch.no_grad():
            target = int(model(x).argmax(dim=1)[0])

    cam = ScoreCAM(model=model, target_layers=[model.layer4])
    cam.batch_size = args.batch_size
    targets = [ClassifierOutputTarget(target)]

    def run_pytorch() -> float:
        start = time.perf_counter()
        cam(input_tensor=x, targets=targets)
        return time.perf_counter() - start

    def run_elucidate() -> float:
        command = args.elucidate.format(weights=shlex.quote(str(weights)), input=shlex.quote(str(input_path)),
                                        target=target)
        start = time.perf_counter()
        result = subprocess.run(command, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"elucidate command failed ({result.returncode}): {result.stderr.strip()}")
        return elapsed

    print(f"ScoreCAM, ResNet34 layer4, {args.size}x{args.size}, batch size {args.batch_size}, target {target}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads", flush=True)
    run_pytorch()  # warm-up
    if args.elucidate:
        run_elucidate()
    times: dict[str, list[float]] = {"pytorch-grad-cam": [], "elucidate": []}
    for _ in range(args.runs):  # interleaved, so both see the same machine load
        times["pytorch-grad-cam"].append(run_pytorch())
        if args.elucidate:
            times["elucidate"].append(run_elucidate())
    medians = {name: statistics.median(ts) for name, ts in times.items() if ts}
    for name, ts in times.items():
        if ts:
            print(f"{name}: median {medians[name]:.2f} s over {len(ts)} runs ({', '.join(f'{t:.2f}' for t in ts)})")
    if "elucidate" in medians:
        print(f"ratio elucidate / pytorch-grad-cam: {medians['elucidate'] / medians['pytorch-grad-cam']:.3f}")


if __name__ == "__main__":
    main()
