"""The built-in model's report card (issue 15): every listed input-attribution method scored by
``elucidate evaluate compare`` on the first N images of the committed Fashion-MNIST test slice
(``Tests/Fixtures/builtin/test-slice-images.idx``), printed as a Markdown table for the README.

    python3 tools/report_card.py --elucidate .build/release/elucidate --count 100 --seed 1

The images are written as gray PNGs (as ``tools/train_builtin.py`` writes ``Resources/images``)
to a temporary folder and evaluated in one run, so each number is a mean over the images:
deletion and insertion AUC (RISE's definitions, 50 steps), infidelity (Gaussian, stdev 0.1, 10
samples), sensitivity-max (radius 0.02, 10 samples) and the Spearman correlation of absolute
maps after the sanity check's last stage. Needs numpy and Pillow only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
METHODS = "saliency,input-x-gradient,integrated-gradients,deeplift,guided-backprop,deconvolution"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (magic 0x0803 for images)."""
    data = path.read_bytes()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elucidate", default=str(ROOT / ".build" / "release" / "elucidate"))
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    images = read_idx(ROOT / "Tests" / "Fixtures" / "builtin" / "test-slice-images.idx")[: args.count]
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, image in enumerate(images):
            path = Path(folder) / f"test-{index:03d}.png"
            Image.fromarray(image, mode="L").save(path)
            paths.append(str(path))
        result = subprocess.run([args.elucidate, "evaluate", "compare", *paths, "--methods", args.methods,
                                 "--seed", str(args.seed), "--json"], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    print(f"| method ({report['inputs']} images, seed {report['seed']}) | deletion AUC ↓ | insertion AUC ↑ "
          "| infidelity ↓ | sensitivity-max ↓ | sanity: final Spearman of abs. maps ↓ |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in report["methods"]:
        print(f"| {row['method']} | {row['deletion']:.4f} | {row['insertion']:.4f} | {row['infidelity']:.4g} "
              f"| {row['sensitivityMax']:.4f} | {row['sanitySpearmanAbs']:.4f} |")


if __name__ == "__main__":
    main()
