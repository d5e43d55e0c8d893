"""Golden perturbation attributions from Captum for Elucidate's parity tests.

Regenerates ``Tests/Fixtures/perturbation/``: for a ResNet with the deterministic weights of
``tools/resnet.py`` (bit for bit Swift's ``DeterministicWeights``) and a deterministic input,
Captum's Occlusion and FeatureAblation attributions as float32 ``.npy`` (N, 3, H, W), plus
``manifest.json`` (method, options, targets).

    python3 tools/golden_perturbation.py

Cases:
  * ResNet34 at 224x224 (batch 1, predicted class): Occlusion with window (3,45,45),
    stride (3,40,40), baseline 0 (a coarse version of the seed's call, to keep tests fast);
    FeatureAblation over a 4x4 grid (cell of (y, x) = (y*4//H)*4 + x*4//W, mask (1,1,H,W)).
  * ResNet18 (10 classes) at 64x48, batch 2, targets [3, 7]: Occlusion with window (1,9,7),
    stride (1,5,4) (windows overrun the border and slide over channels), baseline 0.25;
    FeatureAblation with a per-channel int32 mask (1,3,64,48) saved as
    ``r18_feature_mask.npy``, baseline 0.25.
  * ResNet18 at 64x48, batch 1, target 3: ShapleyValueSampling over a 3x3 grid with 400
    samples (torch.manual_seed(0)): compared by correlation.

Models run in eval mode, float32, on the CPU with 2 threads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from captum.attr import FeatureAblation, Occlusion, ShapleyValueSampling

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402


def grid_mask(cells: int, height: int, width: int) -> torch.Tensor:
    y = torch.arange(height).reshape(height, 1) * cells // height
    x = torch.arange(width).reshape(1, width) * cells // width
    return (y * cells + x).reshape(1, 1, height, width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "Tests" / "Fixtures" / "perturbation")
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = []

    def save(name, model_desc, method, options, targets, attributions):
        file = f"{name}.npy"
        np.save(args.out / file, np.ascontiguousarray(attributions.detach().numpy(), dtype="<f4"))
        cases.append({"name": name, **model_desc, "method": method, "options": options, "targets": targets, "output": file})
        print(f"{name}: |attr| max {float(attributions.abs().max()):.4g}")

    with torch.no_grad():
        r34 = {"arch": "resnet34", "num_classes": 1000, "input": {"key": "input", "shape": [1, 3, 224, 224]}}
        model = resnet.deterministic_model("resnet34", 1000)
        x = torch.from_numpy(resnet.deterministic_input("input", (1, 3, 224, 224)))
        target = int(model(x).argmax(dim=1)[0])
        save("r34_occlusion", r34, "occlusion", {"window": [3, 45, 45], "stride": [3, 40, 40], "baseline": 0}, [target],
             Occlusion(model).attribute(x, sliding_window_shapes=(3, 45, 45), strides=(3, 40, 40), baselines=0,
                                        target=target, perturbations_per_eval=16))
        save("r34_feature_ablation_grid", r34, "feature-ablation", {"grid": 4}, [target],
             FeatureAblation(model).attribute(x, feature_mask=grid_mask(4, 224, 224), target=target,
                                              perturbations_per_eval=16))

        r18 = {"arch": "resnet18", "num_classes": 10, "input": {"key": "input", "shape": [2, 3, 64, 48]}}
        model = resnet.deterministic_model("resnet18", 10)
        x = torch.from_numpy(resnet.deterministic_input("input", (2, 3, 64, 48)))
        t = torch.tensor([3, 7])
        save("r18_occlusion_baseline", r18, "occlusion", {"window": [1, 9, 7], "stride": [1, 5, 4], "baseline": 0.25},
             [3, 7], Occlusion(model).attribute(x, sliding_window_shapes=(1, 9, 7), strides=(1, 5, 4), baselines=0.25,
                                                target=t, perturbations_per_eval=8))
        c = torch.arange(3).reshape(1, 3, 1, 1)
        mask = (c * 7 + grid_mask(3, 64, 48) * 2 + 5).to(torch.int32)  # sparse, unordered-looking ids
        np.save(args.out / "r18_feature_mask.npy", mask.numpy().astype("<i4"))
        save("r18_feature_ablation_mask", r18, "feature-ablation", {"feature-mask": "r18_feature_mask.npy", "baseline": 0.25},
             [3, 7], FeatureAblation(model).attribute(x, feature_mask=mask.long(), baselines=0.25, target=t,
                                                      perturbations_per_eval=5))

        # Sampling methods at many samples on a coarse grid, compared by correlation.
        torch.manual_seed(0)
        x1 = x[:1]
        save("r18_shapley_grid3", {**r18, "input": {"key": "input", "shape": [1, 3, 64, 48]}}, "shapley-value-sampling",
             {"grid": 3, "samples": 400}, [3],
             ShapleyValueSampling(model).attribute(x1, feature_mask=grid_mask(3, 64, 48), target=3, n_samples=400,
                                                   perturbations_per_eval=50))

    manifest = {"generator": "tools/golden_perturbation.py", "torch": torch.__version__,
                "captum": __import__("captum").__version__, "cases": cases}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
