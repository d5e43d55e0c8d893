"""Golden attributions from Captum for Elucidate's parity tests.

Regenerates ``Tests/Fixtures/attributions/``: for a ResNet with the deterministic weights of
``tools/resnet.py`` (the formula Swift's ``DeterministicWeights`` computes bit for bit) and a
deterministic input, Captum's attributions for each gradient method, as float32 ``.npy``
(N, 3, H, W), plus ``manifest.json`` (method, options, target, Captum's convergence delta).

    pip install -r tools/requirements.txt
    python3 tools/golden_attributions.py

Cases:
  * ResNet34 at 224x224 (batch 1): saliency, input-x-gradient, guided-backprop,
    deconvolution, integrated-gradients with each quadrature (16 steps; Captum's
    trapezoid weights sum to (n-1)/n, Elucidate's to 1: the test scales by that factor).
  * DeepLIFT on ResNet34 at 224x224, on ResNet18 with a constant baseline, and DeepLIFT SHAP
    over three deterministic baselines (Captum needs one ReLU module per use: see
    `distinct_relus`).
  * ResNet18 at 64x48 (batch 2, different targets): saliency (signed), integrated-gradients.
  * Stochastic methods at many samples, compared by correlation (ResNet18, 64x48, batch 1):
    NoiseTunnel(Saliency) smoothgrad with 500 samples, stdev 0.2; GradientSHAP with 500
    samples over baselines [zeros, ones * 0.5].

Models run in eval mode, float32, on the CPU with 2 threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
from captum.attr import (
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402

QUADRATURES = {
    "gausslegendre": "gausslegendre",
    "riemann-left": "riemann_left",
    "riemann-right": "riemann_right",
    "riemann-middle": "riemann_middle",
    "riemann-trapezoid": "riemann_trapezoid",
}


def non_inplace(model: torch.nn.Module) -> torch.nn.Module:
    """Captum's ReLU hooks need out-of-place ReLUs; the result is the same."""
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return model


def distinct_relus(model: torch.nn.Module) -> torch.nn.Module:
    """The same network with one ReLU module per use.

    torchvision's blocks call one `relu` module two or three times; Captum's DeepLift keeps
    each ReLU's input and output on the module, so it refuses (or, in older versions,
    silently mixes up) reused modules. Elucidate has no such restriction; the reference is
    computed on this equivalent network."""

    def basic_forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu_a(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu_out(out + identity)

    def bottleneck_forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu_a(self.bn1(self.conv1(x)))
        out = self.relu_b(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu_out(out + identity)

    for module in list(model.modules()):
        if isinstance(module, resnet.BasicBlock):
            module.relu_a, module.relu_out = torch.nn.ReLU(), torch.nn.ReLU()
            module.forward = types.MethodType(basic_forward, module)
        elif isinstance(module, resnet.Bottleneck):
            module.relu_a, module.relu_b, module.relu_out = torch.nn.ReLU(), torch.nn.ReLU(), torch.nn.ReLU()
            module.forward = types.MethodType(bottleneck_forward, module)
    return non_inplace(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "Tests" / "Fixtures" / "attributions")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    np.random.seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = []

    def save(name: str, model_desc: dict, method: str, options: dict, targets: list[int], attributions, delta=None):
        file = f"{name}.npy"
        np.save(args.out / file, np.ascontiguousarray(attributions.detach().numpy(), dtype="<f4"))
        case = {"name": name, **model_desc, "method": method, "options": options, "targets": targets, "output": file}
        if delta is not None:
            case["captum_delta"] = [float(d) for d in delta.detach().numpy().ravel()]
        cases.append(case)
        print(f"{name}: |attr| max {float(attributions.abs().max()):.4g}")

    # ResNet34, 224x224, batch 1.
    r34 = {"arch": "resnet34", "num_classes": 1000, "input": {"key": "input", "shape": [1, 3, 224, 224]}}
    model = non_inplace(resnet.deterministic_model("resnet34", 1000))
    x = torch.from_numpy(resnet.deterministic_input("input", (1, 3, 224, 224)))
    with torch.no_grad():
        target = int(model(x).argmax(dim=1)[0])
    targets = [target]
    save("r34_saliency", r34, "saliency", {}, targets, Saliency(model).attribute(x, target=target))
    save("r34_input_x_gradient", r34, "input-x-gradient", {}, targets, InputXGradient(model).attribute(x, target=target))
    save("r34_guided_backprop", r34, "guided-backprop", {}, targets, GuidedBackprop(model).attribute(x, target=target))
    save("r34_deconvolution", r34, "deconvolution", {}, targets, Deconvolution(model).attribute(x, target=target))
    for ours, theirs in QUADRATURES.items():
        ig = IntegratedGradients(model)
        attributions, delta = ig.attribute(x, target=target, n_steps=16, method=theirs, internal_batch_size=8,
                                           return_convergence_delta=True)
        save(f"r34_ig_{ours}", r34, "integrated-gradients", {"steps": 16, "quadrature": ours}, targets, attributions, delta)

    dl_model = distinct_relus(resnet.deterministic_model("resnet34", 1000))
    attributions, delta = DeepLift(dl_model).attribute(x, target=target, return_convergence_delta=True)
    save("r34_deeplift", r34, "deeplift", {}, targets, attributions, delta)

    # ResNet18, 64x48, batch 2 with different targets.
    r18 = {"arch": "resnet18", "num_classes": 10, "input": {"key": "input", "shape": [2, 3, 64, 48]}}
    model = non_inplace(resnet.deterministic_model("resnet18", 10))
    x = torch.from_numpy(resnet.deterministic_input("input", (2, 3, 64, 48)))
    targets = [3, 7]
    t = torch.tensor(targets)
    save("r18_saliency_signed", r18, "saliency", {"signed": True}, targets, Saliency(model).attribute(x, target=t, abs=False))
    attributions, delta = IntegratedGradients(model).attribute(
        x, target=t, n_steps=20, baselines=0.25, return_convergence_delta=True)
    save("r18_ig_baseline", r18, "integrated-gradients", {"steps": 20, "quadrature": "gausslegendre", "baseline": 0.25},
         targets, attributions, delta)

    dl_model = distinct_relus(resnet.deterministic_model("resnet18", 10))
    attributions, delta = DeepLift(dl_model).attribute(x, target=t, baselines=0.25, return_convergence_delta=True)
    save("r18_deeplift_baseline", r18, "deeplift", {"baseline": 0.25}, targets, attributions, delta)
    shap_baselines = torch.from_numpy(resnet.deterministic_input("shap-baselines", (3, 3, 64, 48)))
    attributions = DeepLiftShap(dl_model).attribute(x, target=t, baselines=shap_baselines)
    save("r18_deeplift_shap", r18, "deeplift-shap", {"baselines": "deterministic key shap-baselines (3,3,64,48)"},
         targets, attributions)

    # Stochastic methods, many samples: compared by correlation.
    r18one = {"arch": "resnet18", "num_classes": 10, "input": {"key": "input", "shape": [1, 3, 64, 48]}}
    x1 = x[:1]
    nt = NoiseTunnel(Saliency(model))
    save("r18_nt_saliency_smoothgrad", r18one, "saliency",
         {"noise-tunnel": "smoothgrad", "nt-samples": 500, "nt-stdev": 0.2, "signed": True}, [3],
         nt.attribute(x1, nt_type="smoothgrad", nt_samples=500, nt_samples_batch_size=50, stdevs=0.2, target=3, abs=False))
    baselines = torch.cat([torch.zeros(1, 3, 64, 48), torch.full((1, 3, 64, 48), 0.5)])
    np.save(args.out / "r18_gradient_shap_baselines.npy", baselines.numpy().astype("<f4"))
    save("r18_gradient_shap", r18one, "gradient-shap",
         {"samples": 500, "stdev": 0.0, "baselines": "r18_gradient_shap_baselines.npy"}, [3],
         GradientShap(model).attribute(x1, baselines=baselines, n_samples=500, stdevs=0.0, target=3))

    manifest = {"generator": "tools/golden_attributions.py", "torch": torch.__version__,
                "captum": __import__("captum").__version__, "cases": cases}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
