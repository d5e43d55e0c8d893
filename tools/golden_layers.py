"""Golden layer and neuron attributions from Captum for Elucidate's parity tests (issue 13).

Regenerates ``Tests/Fixtures/layers/``: for a ResNet with the deterministic weights of
``tools/resnet.py`` (bit for bit Swift's ``DeterministicWeights``) and a deterministic input,
Captum's layer and neuron attributions as float32 ``.npy``, plus ``manifest.json``.

    /work/venv/bin/python tools/golden_layers.py      # the pinned venv: tools/requirements.txt

Layers are addressed by their PyTorch module path in ``tools/resnet.py``'s model, which has
torchvision's module names (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1``..``layer4``,
``layer3.5``, ``layer4.2.conv2``, ``layer1.0.bn1``, ``avgpool``, ``fc``); ``layer_input`` true is
Captum's ``attribute_to_layer_input=True`` (``attribute_to_neuron_input`` for neuron methods).
A manifest entry: ``name``, ``arch``, ``num_classes``, ``input`` {key, shape}, ``method`` (the
CLI name), ``layer``, ``layer_input``, ``neuron`` ([C, H, W] in the layer's output, or null),
``options`` (CLI option names), ``targets`` (one per row; null for methods without a target:
layer-activation, neuron-gradient, neuron-integrated-gradients, neuron-guided-backprop), ``output``, ``shape`` and, where
Captum returns one, ``captum_delta`` (one per row).

Cases on ResNet34, 224x224, batch 1, 1000 classes, input key ``input``, target = predicted class:
  * layer-activation on ``layer4`` (1,512,7,7); on ``fc``'s input (``layer_input``: (1,512)).
  * layer-gradient-x-activation on ``layer4.2.conv2`` (1,512,7,7).
  * grad-cam on ``layer4`` (1,1,7,7), with ``relu-attributions`` for target 500 (1,1,7,7: the
    predicted class's map has no negative cell, class 500's has 4 of 49), and on ``layer4``'s
    input (``layer_input``: layer3's output, (1,1,14,14)). The default case also stores
    ``LayerAttribution.interpolate`` to 224x224 with ``bilinear`` and ``nearest``
    (``F.interpolate(map, (224, 224), mode=...)``; bilinear with align_corners=False, i.e.
    half-pixel centres; nearest is PyTorch's legacy ``floor(dst * in / out)``): the manifest's
    ``upsampled`` {mode: file}, each (1,1,224,224).
  * guided-grad-cam on ``layer4`` (1,3,224,224): GuidedBackprop times the relu'd Grad-CAM
    upsampled with ``nearest`` (Captum's default ``interpolate_mode``).
  * layer-integrated-gradients on ``layer3`` (1,256,14,14): 16 steps gausslegendre, zero
    baseline (the path runs in the layer's output space, from layer3(baseline) to layer3(x)).
  * layer-conductance on ``layer3`` (1,256,14,14), 16 steps gausslegendre, zero baseline.
  * internal-influence on ``layer4`` (1,512,7,7), 16 steps gausslegendre, zero baseline.
  * layer-deeplift on ``layer4`` (1,512,7,7), zero baseline (on `distinct_relus`' network).
  * layer-feature-ablation on ``layer4`` (1,512,7,7): layer mask (1,1,7,7) of a 3x3 grid,
    cell = (y*3//7)*3 + x*3//7, baseline 0 (saved as ``r34_layer4_mask.npy``, int32).
  * neuron-gradient and neuron-guided-backprop for neuron [12, 3, 4] of ``layer4`` (1,3,224,224).

Cases on ResNet18, 64x48, batch 2, 10 classes, targets [3, 7] (odd sizes: shape/stride bugs):
  * layer-activation on ``conv1`` (2,64,32,24).
  * layer-gradient-x-activation on ``layer1.0.bn1`` (2,64,16,12).
  * grad-cam on ``layer3`` (2,1,4,3) with its ``interpolate`` to 64x48, bilinear.
  * layer-integrated-gradients on ``layer2`` (2,128,8,6): 16 steps gausslegendre, baseline 0.25.
  * layer-conductance on ``layer3``'s input (``layer_input``: (2,128,8,6)), 16 steps.
  * layer-deeplift on ``layer1.0.bn1`` (2,64,16,12), baseline 0.25 (its convergence delta is
    far from 0: the identity path bypasses bn1, so the layer's attributions need not sum to
    the output difference).
  * layer-gradient-shap on ``layer3`` (2,256,4,3): 64 samples per row, stdev 0, baselines
    [zeros, 0.5s] (``r18_gradient_shap_baselines.npy``). Captum draws the samples with numpy
    (seeded 0): the draws are recorded in ``r18_layer_gradient_shap_layer3_samples.npy``
    float32 (2*64, 2): expanded row r is input row r // 64, its baseline index and its alpha
    (the point is baseline + alpha * (x - baseline)); the attribution is the mean over a row's
    samples of grad(layer at that point) * (layer(x) - layer(baseline)). So it can be compared
    exactly, and by correlation with fresh samples.
  * neuron-integrated-gradients for neuron [5, 3, 2] of ``layer2`` (2,3,64,48), 16 steps
    gausslegendre, zero baseline.
  * neuron-conductance for the same neuron (2,3,64,48), 16 steps gausslegendre (Captum's
    default there is riemann_trapezoid; gausslegendre is set explicitly), zero baseline.

Models run in eval mode, float32, on the CPU with 2 threads, with out-of-place ReLUs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from captum.attr import (
    GuidedGradCam,
    InternalInfluence,
    LayerActivation,
    LayerAttribution,
    LayerConductance,
    LayerDeepLift,
    LayerFeatureAblation,
    LayerGradCam,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    NeuronConductance,
    NeuronGradient,
    NeuronGuidedBackprop,
    NeuronIntegratedGradients,
    NoiseTunnel,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402
from golden_attributions import distinct_relus, non_inplace  # noqa: E402

TORCHVISION_MODULES = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "layer3.5",
                       "layer4.2.conv2", "layer1.0.bn1", "avgpool", "fc"]


def module(model: torch.nn.Module, path: str) -> torch.nn.Module:
    return model.get_submodule(path)


def grid_mask(cells: int, height: int, width: int) -> torch.Tensor:
    y = torch.arange(height).reshape(height, 1) * cells // height
    x = torch.arange(width).reshape(1, width) * cells // width
    return (y * cells + x).reshape(1, 1, height, width)


class RecordingRandom:
    """Records the numpy draws Captum's GradientShap makes (baseline indices, then alphas)."""

    def __enter__(self):
        self.choice, self.uniform = np.random.choice, np.random.uniform
        self.indices, self.alphas = [], []

        def choice(*args, **kwargs):
            result = self.choice(*args, **kwargs)
            self.indices.append(np.asarray(result))
            return result

        def uniform(*args, **kwargs):
            result = self.uniform(*args, **kwargs)
            self.alphas.append(np.asarray(result))
            return result

        np.random.choice, np.random.uniform = choice, uniform
        return self

    def __exit__(self, *exc):
        np.random.choice, np.random.uniform = self.choice, self.uniform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "Tests" / "Fixtures" / "layers")
    parser.add_argument("--only", choices=["noise-tunnel"], help="write only these cases into the existing manifest")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    np.random.seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = []

    def save_array(file: str, array) -> list[int]:
        if isinstance(array, torch.Tensor):
            array = array.detach().numpy()
        np.save(args.out / file, np.ascontiguousarray(array, dtype="<f4"))
        return list(array.shape)

    def save(name, model_desc, method, layer, targets, attributions, options=None, layer_input=False, neuron=None,
             delta=None, **extra):
        file = f"{name}.npy"
        shape = save_array(file, attributions)
        case = {"name": name, **model_desc, "method": method, "layer": layer, "layer_input": layer_input,
                "neuron": list(neuron) if neuron is not None else None, "options": options or {}, "targets": targets,
                "output": file, "shape": shape}
        if delta is not None:
            case["captum_delta"] = [float(d) for d in delta.detach().numpy().ravel()]
        case.update(extra)
        cases.append(case)
        print(f"{name}: {tuple(shape)} |attr| max {float(attributions.abs().max()):.4g}"
              + (f" delta {case['captum_delta']}" if delta is not None else ""))

    ig_options = {"steps": 16, "quadrature": "gausslegendre", "baseline": 0.0}

    def noise_tunnel_cases() -> None:
        """Captum's NoiseTunnel around layer methods (stochastic: the tests compare by
        correlation), ResNet18 64x48, one input, target 3, 500 samples of σ = 0.2."""
        r18one = {"arch": "resnet18", "num_classes": 10, "input": {"key": "input", "shape": [1, 3, 64, 48]}}
        model = non_inplace(resnet.deterministic_model("resnet18", 10))
        x1 = torch.from_numpy(resnet.deterministic_input("input", (1, 3, 64, 48)))
        tunnel = {"nt-samples": 500, "nt-stdev": 0.2, "nt-batch-size": 50}
        nt = NoiseTunnel(LayerGradCam(model, module(model, "layer3")))
        save("r18_nt_grad_cam_layer3", r18one, "grad-cam", "layer3", [3],
             nt.attribute(x1, nt_type="smoothgrad", nt_samples=500, nt_samples_batch_size=50, stdevs=0.2, target=3),
             {"noise-tunnel": "smoothgrad", **tunnel})
        nt = NoiseTunnel(LayerGradientXActivation(model, module(model, "layer2")))
        save("r18_nt_layer_gxa_layer2", r18one, "layer-gradient-x-activation", "layer2", [3],
             nt.attribute(x1, nt_type="smoothgrad_sq", nt_samples=500, nt_samples_batch_size=50, stdevs=0.2,
                          target=3),
             {"noise-tunnel": "smoothgrad-sq", **tunnel})

    if args.only == "noise-tunnel":
        noise_tunnel_cases()
        path = args.out / "manifest.json"
        manifest = json.loads(path.read_text())
        names = {case["name"] for case in cases}
        manifest["cases"] = [case for case in manifest["cases"] if case["name"] not in names] + cases
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote {len(cases)} cases into {path}")
        return

    # ---------------------------------------------------------------- ResNet34, 224x224, batch 1
    r34 = {"arch": "resnet34", "num_classes": 1000, "input": {"key": "input", "shape": [1, 3, 224, 224]}}
    model = non_inplace(resnet.deterministic_model("resnet34", 1000))
    names = dict(model.named_modules())
    missing = [m for m in TORCHVISION_MODULES if m not in names]
    assert not missing, f"tools/resnet.py lacks torchvision's module names {missing}"
    x = torch.from_numpy(resnet.deterministic_input("input", (1, 3, 224, 224)))
    with torch.no_grad():
        target = int(model(x).argmax(dim=1)[0])
    t = [target]
    m = lambda path: module(model, path)  # noqa: E731

    save("r34_layer_activation_layer4", r34, "layer-activation", "layer4", None,
         LayerActivation(model, m("layer4")).attribute(x))
    save("r34_layer_activation_fc_input", r34, "layer-activation", "fc", None,
         LayerActivation(model, m("fc")).attribute(x, attribute_to_layer_input=True), layer_input=True)
    save("r34_layer_gxa_layer4_2_conv2", r34, "layer-gradient-x-activation", "layer4.2.conv2", t,
         LayerGradientXActivation(model, m("layer4.2.conv2")).attribute(x, target=target))

    cam = LayerGradCam(model, m("layer4")).attribute(x, target=target)
    upsampled = {}
    for mode in ("bilinear", "nearest"):
        file = f"r34_grad_cam_layer4_up_{mode}.npy"
        save_array(file, LayerAttribution.interpolate(cam, (224, 224), interpolate_mode=mode))
        upsampled[mode] = file
    save("r34_grad_cam_layer4", r34, "grad-cam", "layer4", t, cam, upsampled=upsampled,
         upsample_note="LayerAttribution.interpolate(map, (224, 224), mode): F.interpolate, "
                       "bilinear with align_corners=False; each (1,1,224,224)")
    # At the predicted class every cell of layer4's map is positive; class 500 has negative cells.
    save("r34_grad_cam_layer4_relu", r34, "grad-cam", "layer4", [500],
         LayerGradCam(model, m("layer4")).attribute(x, target=500, relu_attributions=True),
         options={"relu-attributions": True})
    save("r34_grad_cam_layer4_input", r34, "grad-cam", "layer4", t,
         LayerGradCam(model, m("layer4")).attribute(x, target=target, attribute_to_layer_input=True),
         layer_input=True)
    save("r34_guided_grad_cam_layer4", r34, "guided-grad-cam", "layer4", t,
         GuidedGradCam(model, m("layer4")).attribute(x, target=target), options={"upsample": "nearest"})

    attributions, delta = LayerIntegratedGradients(model, m("layer3")).attribute(
        x, baselines=0.0, target=target, n_steps=16, method="gausslegendre", internal_batch_size=8,
        return_convergence_delta=True)
    save("r34_layer_ig_layer3", r34, "layer-integrated-gradients", "layer3", t, attributions, ig_options, delta=delta)
    attributions, delta = LayerConductance(model, m("layer3")).attribute(
        x, baselines=0.0, target=target, n_steps=16, method="gausslegendre", internal_batch_size=9,
        return_convergence_delta=True)
    save("r34_layer_conductance_layer3", r34, "layer-conductance", "layer3", t, attributions, ig_options, delta=delta)
    save("r34_internal_influence_layer4", r34, "internal-influence", "layer4", t,
         InternalInfluence(model, m("layer4")).attribute(x, baselines=0.0, target=target, n_steps=16,
                                                         method="gausslegendre", internal_batch_size=8),
         ig_options)

    dl_model = distinct_relus(resnet.deterministic_model("resnet34", 1000))
    attributions, delta = LayerDeepLift(dl_model, dl_model.get_submodule("layer4")).attribute(
        x, baselines=0.0, target=target, return_convergence_delta=True)
    save("r34_layer_deeplift_layer4", r34, "layer-deeplift", "layer4", t, attributions, {"baseline": 0.0}, delta=delta)

    layer_mask = grid_mask(3, 7, 7)
    np.save(args.out / "r34_layer4_mask.npy", layer_mask.numpy().astype("<i4"))
    with torch.no_grad():
        save("r34_layer_feature_ablation_layer4", r34, "layer-feature-ablation", "layer4", t,
             LayerFeatureAblation(model, m("layer4")).attribute(x, target=target, layer_mask=layer_mask,
                                                                perturbations_per_eval=9),
             {"layer-mask": "r34_layer4_mask.npy", "baseline": 0.0})

    neuron = (12, 3, 4)
    save("r34_neuron_gradient_layer4", r34, "neuron-gradient", "layer4", None,
         NeuronGradient(model, m("layer4")).attribute(x, neuron_selector=neuron), neuron=neuron)
    save("r34_neuron_guided_backprop_layer4", r34, "neuron-guided-backprop", "layer4", None,
         NeuronGuidedBackprop(model, m("layer4")).attribute(x, neuron_selector=neuron), neuron=neuron)

    # ---------------------------------------------------- ResNet18, 64x48, batch 2, targets [3, 7]
    r18 = {"arch": "resnet18", "num_classes": 10, "input": {"key": "input", "shape": [2, 3, 64, 48]}}
    model = non_inplace(resnet.deterministic_model("resnet18", 10))
    x = torch.from_numpy(resnet.deterministic_input("input", (2, 3, 64, 48)))
    targets = [3, 7]
    t = torch.tensor(targets)
    m = lambda path: module(model, path)  # noqa: E731
    ig_options_025 = {**ig_options, "baseline": 0.25}

    save("r18_layer_activation_conv1", r18, "layer-activation", "conv1", None,
         LayerActivation(model, m("conv1")).attribute(x))
    save("r18_layer_gxa_layer1_0_bn1", r18, "layer-gradient-x-activation", "layer1.0.bn1", targets,
         LayerGradientXActivation(model, m("layer1.0.bn1")).attribute(x, target=t))
    cam = LayerGradCam(model, m("layer3")).attribute(x, target=t)
    file = "r18_grad_cam_layer3_up_bilinear.npy"
    save_array(file, LayerAttribution.interpolate(cam, (64, 48), interpolate_mode="bilinear"))
    save("r18_grad_cam_layer3", r18, "grad-cam", "layer3", targets, cam, upsampled={"bilinear": file})
    attributions, delta = LayerIntegratedGradients(model, m("layer2")).attribute(
        x, baselines=0.25, target=t, n_steps=16, method="gausslegendre", return_convergence_delta=True)
    save("r18_layer_ig_layer2", r18, "layer-integrated-gradients", "layer2", targets, attributions, ig_options_025,
         delta=delta)
    attributions, delta = LayerConductance(model, m("layer3")).attribute(
        x, baselines=0.0, target=t, n_steps=16, method="gausslegendre", return_convergence_delta=True,
        attribute_to_layer_input=True)
    save("r18_layer_conductance_layer3_input", r18, "layer-conductance", "layer3", targets, attributions, ig_options,
         layer_input=True, delta=delta)

    dl_model = distinct_relus(resnet.deterministic_model("resnet18", 10))
    attributions, delta = LayerDeepLift(dl_model, dl_model.get_submodule("layer1.0.bn1")).attribute(
        x, baselines=0.25, target=t, return_convergence_delta=True)
    save("r18_layer_deeplift_layer1_0_bn1", r18, "layer-deeplift", "layer1.0.bn1", targets, attributions,
         {"baseline": 0.25}, delta=delta)

    samples = 64
    baselines = torch.cat([torch.zeros(1, 3, 64, 48), torch.full((1, 3, 64, 48), 0.5)])
    np.save(args.out / "r18_gradient_shap_baselines.npy", baselines.numpy().astype("<f4"))
    np.random.seed(0)
    torch.manual_seed(0)
    with RecordingRandom() as draws:
        attributions, delta = LayerGradientShap(model, m("layer3")).attribute(
            x, baselines=baselines, n_samples=samples, stdevs=0.0, target=t, return_convergence_delta=True)
    indices = np.concatenate([d.ravel() for d in draws.indices])
    alphas = np.concatenate([d.ravel() for d in draws.alphas])
    assert indices.shape == alphas.shape == (2 * samples,), (indices.shape, alphas.shape)
    samples_file = "r18_layer_gradient_shap_layer3_samples.npy"
    np.save(args.out / samples_file, np.stack([indices.astype(np.float32), alphas.astype(np.float32)], axis=1))
    # Check the record: recompute the attribution from the recorded draws.
    layer = m("layer3")
    acts = {}
    hook = layer.register_forward_hook(lambda mod, inp, out: acts.__setitem__("out", out))
    with torch.no_grad():
        model(x)
        layer_x = acts["out"]
        model(baselines)
        layer_b = acts["out"]
    hook.remove()
    rows = torch.arange(2 * samples) // samples
    idx = torch.from_numpy(indices.astype(np.int64))
    alpha = torch.from_numpy(alphas.astype(np.float32)).reshape(-1, 1, 1, 1)
    points = baselines[idx] + alpha * (x[rows] - baselines[idx])
    grads = []

    def keep(mod, inp, out):
        out.retain_grad()
        acts["out"] = out

    hook = layer.register_forward_hook(keep)
    out = model(points)
    out.gather(1, t[rows].reshape(-1, 1)).sum().backward()
    hook.remove()
    grads = acts["out"].grad
    recomputed = (grads * (layer_x[rows] - layer_b[idx])).reshape(2, samples, *grads.shape[1:]).mean(dim=1)
    error = float((recomputed - attributions).abs().max() / attributions.abs().max())
    print(f"layer gradient shap recomputed from the recorded draws: max rel error {error:.3g}")
    assert error < 1e-4
    save("r18_layer_gradient_shap_layer3", r18, "layer-gradient-shap", "layer3", targets, attributions,
         {"samples": samples, "stdev": 0.0, "baselines": "r18_gradient_shap_baselines.npy", "seed": 0},
         delta=delta, samples=samples_file,
         samples_note="float32 (N*samples, 2): expanded row r belongs to input row r // samples; "
                      "column 0 baseline index, column 1 alpha (point = baseline + alpha * (x - baseline))")

    neuron = (5, 3, 2)
    neuron_options = {**ig_options}
    save("r18_neuron_ig_layer2", r18, "neuron-integrated-gradients", "layer2", None,
         NeuronIntegratedGradients(model, m("layer2")).attribute(x, neuron_selector=neuron, baselines=0.0, n_steps=16,
                                                                 method="gausslegendre"),
         neuron_options, neuron=neuron)
    save("r18_neuron_conductance_layer2", r18, "neuron-conductance", "layer2", targets,
         NeuronConductance(model, m("layer2")).attribute(x, neuron_selector=neuron, baselines=0.0, target=t,
                                                         n_steps=16, method="gausslegendre"),
         neuron_options, neuron=neuron)

    noise_tunnel_cases()

    manifest = {"generator": "tools/golden_layers.py", "torch": torch.__version__,
                "captum": __import__("captum").__version__, "cases": cases}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
