"""Golden CAM maps from pytorch-grad-cam and LRP relevances from Zennit (issue 13).

Regenerates ``Tests/Fixtures/cam/``. Needs the separate venv of ``tools/requirements-cam.txt``
(torchvision, and so its own torch build; see there why):

    python3 -m venv /work/venv-cam && /work/venv-cam/bin/pip install -r tools/requirements-cam.txt
    /work/venv-cam/bin/python tools/golden_cam.py

Model and input: ResNet34, 1000 classes, the deterministic weights of ``tools/resnet.py`` (bit for
bit Swift's ``DeterministicWeights``), deterministic input key ``input`` (1,3,224,224), target =
the predicted class, ``ClassifierOutputTarget(target)``. The CAM family runs on
``tools/resnet.py``'s model (pytorch-grad-cam needs only the target layer module); Zennit's
``ResNetCanonizer`` recognises torchvision's ``BasicBlock`` class, so the LRP cases run on
``torchvision.models.resnet34`` loaded with the same state dict. The script checks that both
have the same module names and state-dict keys and records their logits' max difference
(``model_check`` in the manifest).

CAM cases (pytorch-grad-cam 1.5.7), target layer ``layer4`` (raw (1,1,7,7)) unless noted:
grad-cam, grad-cam-plus-plus, xgrad-cam, hires-cam, layer-cam, eigen-cam, score-cam
(batch-size 32), ablation-cam (batch-size 32); and grad-cam, grad-cam-plus-plus, xgrad-cam,
hires-cam, layer-cam on ``layer3`` (raw (1,1,14,14)). On layer4, which only average pooling and
fc follow, the gradient is the same at every position (fc weight / 49), so grad-cam, xgrad-cam
and hires-cam give the same map there (to float rounding); layer3 tells them apart. Each stores

  * ``raw_output`` (N,1,h,w) float32: what ``cam.get_cam_image(...)`` returns for the layer's
    activations and gradients (N,h,w), with a channel axis added: the channel-weighted sum of
    the activations, BEFORE any ReLU, scaling or resize. Per method:
      - grad-cam: weights = mean of the gradients over h,w; raw = sum_c w_c A_c.
      - grad-cam-plus-plus: g2 = g^2, g3 = g^3, S_c = sum_hw A_c;
        a = g2 / (2 g2 + S_c g3 + 1e-6), a = 0 where g == 0;
        w_c = sum_hw max(g, 0) * a; raw = sum_c w_c A_c.
      - xgrad-cam: w_c = sum_hw g * A / (S_c + 1e-7); raw = sum_c w_c A_c.
      - hires-cam: raw = sum_c g_c * A_c (elementwise).
      - layer-cam: raw = sum_c max(g_c, 0) * A_c.
      - eigen-cam: no gradients; per image, M = A reshaped (h*w, C) with its column means
        subtracted; raw = M @ V[0] (first right singular vector of numpy's SVD), reshaped
        (h,w). The SIGN OF AN SVD VECTOR IS ARBITRARY (LAPACK's choice): a Swift SVD may
        return -raw, and the ReLU that follows then keeps the other half. Compare raw up to sign.
      - score-cam: no gradients; per channel c: U_c = UpsamplingBilinear2d(size=(H,W))(A)_c
        (bilinear with ALIGN_CORNERS=TRUE), normalised (U_c - min) / (max - min + 1e-8);
        score_c = logit_target(model(x * U_c)) in batches of 32; w = softmax_c(score);
        raw = sum_c w_c A_c.
      - ablation-cam: no gradients; the target layer is replaced by a module returning the
        cached activations with channel c set to 0 (if the minimum of that batch of
        activations is 0, as after a ReLU; else to min - 1e7); s_c = logit of that;
        w_c = (s - s_c) / s with s the unablated logit; raw = sum_c w_c A_c.
    ``weights_output`` (N,C) float32 holds the per-channel weights where the method has them
    (all but hires-cam, layer-cam and eigen-cam).
  * ``final_output`` (N,H,W) float32: what ``cam(input_tensor=x, targets=[...])`` returns. From
    raw, exactly (checked by the script, bit for bit; ``postprocess`` in the manifest):
      1. ``cam = np.maximum(raw, 0)``                                  (ReLU)
      2. per image: ``cam = cam - cam.min(); cam = cam / (1e-7 + cam.max())``   (min-max, float32)
      3. per image: ``cv2.resize(np.float32(cam), (W, H))`` (dsize is (width, height)),
         default interpolation INTER_LINEAR: half-pixel centres, src = (dst + 0.5) * in/out - 0.5,
         clamped to the border (replicate), no antialiasing; for float32 it computes in float32.
         It agrees with ``F.interpolate(mode="bilinear", align_corners=False)`` to a few ulps
         (the manifest's ``cv2_vs_torch_bilinear_max_abs`` per case).
      4. aggregate over target layers (one here): ``np.maximum(cam, 0)``, mean over layers.
      5. per image min-max again without resize: ``cam - min``, ``/ (1e-7 + max)``. Step 3's
         interpolation rarely hits the exact extremes, so this pass is not a no-op.
  * For grad-cam on layer4, ``show_cam_on_image(img, final[0], use_rgb=True)`` (224,224,3)
    uint8 (``overlay`` in the manifest), with img = the input un-normalised with ImageNet's
    mean/std in float32, clipped: ``clip(x[0].transpose(1,2,0) * std + mean, 0, 1)``
    (``r34_overlay_image.npy``, float32). show_cam_on_image: heatmap =
    cv2.applyColorMap(np.uint8(255 * mask), COLORMAP_JET) (np.uint8 truncates), BGR->RGB,
    / 255 (float32); cam = 0.5 * heatmap + 0.5 * img; cam = cam / cam.max();
    np.uint8(255 * cam) (truncation). OpenCV's JET table is stored as ``cv2_colormap_jet.npy``
    (256,3) uint8 RGB: row v is the colour of value v.

LRP cases (Zennit, ``method`` lrp): relevance at the input (1,3,224,224) from
``zennit.attribution.Gradient(model, composite)`` called with the one-hot of the target
(``attributor(x, torch.eye(1000)[[target]])``), ``canonizers=[ResNetCanonizer()]``
(SequentialMergeBatchNorm: every BatchNorm folded into the convolution before it, conv1/bn1,
blockN.conv1/bn1, conv2/bn2, downsample.0/.1; and each BasicBlock's residual addition made a
``Sum`` module), composites with their defaults (epsilon 1e-6, stabilizer 1e-6, gamma 0.25):
  * epsilon-plus-flat: conv1 Flat; other convolutions ZPlus; fc Epsilon.
  * epsilon-gamma-box: conv1 ZBox(low, high); other convolutions Gamma(0.25); fc Epsilon;
    low/high per channel from ImageNet's normalisation of [0, 1] pixels:
    low = (0 - mean) / std, high = (1 - mean) / std (the input, in [-2, 2), lies inside).
  * epsilon-alpha2-beta1: convolutions AlphaBeta(2, 1); fc Epsilon.
  * epsilon-plus: convolutions ZPlus; fc Epsilon.
  All: ReLU Pass, residual Sum and AdaptiveAvgPool Norm (stabilizer 1e-6), BatchNorm Pass
  (merged anyway); MaxPool has no rule (its gradient). The manifest records the logit and
  the relevance's sum (conservation check).

Bottleneck LRP cases (``r50_lrp_*``): the same Zennit call on torchvision's resnet50 with
tools/resnet.py's deterministic weights (10 classes), a batch of two deterministic inputs
(key ``lrp_batch``, (2,3,64,64)), row 0's predicted class and another for row 1, composites epsilon-plus-flat and
epsilon-gamma-box: ResNetCanonizer's Bottleneck path (three merged convolutions, a downsample
in every stage) and the batch. ``--only lrp-bottleneck`` writes just these cases into an
existing manifest, leaving the other fixtures as they are.

Models run in eval mode, float32, on the CPU with 2 threads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from pytorch_grad_cam import (AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM,
                              XGradCAM)
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402

GRAD_CAM_LIBRARY = "pytorch-grad-cam 1.5.7"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

CAMS = [  # (CLI name, class, layer, options)
    ("grad-cam", GradCAM, "layer4", {}),
    ("grad-cam-plus-plus", GradCAMPlusPlus, "layer4", {}),
    ("xgrad-cam", XGradCAM, "layer4", {}),
    ("hires-cam", HiResCAM, "layer4", {}),
    ("layer-cam", LayerCAM, "layer4", {}),
    ("eigen-cam", EigenCAM, "layer4", {}),
    ("score-cam", ScoreCAM, "layer4", {"batch-size": 32}),
    ("ablation-cam", AblationCAM, "layer4", {"batch-size": 32}),
    # On layer4 (followed only by average pooling and fc) the gradient is the same at every
    # position, so grad-cam, xgrad-cam and hires-cam coincide there; on layer3 they differ.
    ("grad-cam", GradCAM, "layer3", {}),
    ("grad-cam-plus-plus", GradCAMPlusPlus, "layer3", {}),
    ("xgrad-cam", XGradCAM, "layer3", {}),
    ("hires-cam", HiResCAM, "layer3", {}),
    ("layer-cam", LayerCAM, "layer3", {}),
]

POSTPROCESS = [
    "relu: np.maximum(raw, 0)",
    "per image: x - x.min(); x / (1e-7 + x.max())",
    "per image: cv2.resize(np.float32(x), (W, H)) INTER_LINEAR (half-pixel centres, border replicate)",
    "aggregate layers: np.maximum(x, 0), mean over target layers (one)",
    "per image: x - x.min(); x / (1e-7 + x.max())",
]


def postprocess(raw: np.ndarray, width: int, height: int) -> np.ndarray:
    """pytorch-grad-cam 1.5.7's steps from the raw map (N,h,w) to its output (N,H,W)."""
    cam = np.maximum(raw, 0)
    scaled = []
    for img in cam:
        img = img - np.min(img)
        img = img / (1e-7 + np.max(img))
        scaled.append(cv2.resize(np.float32(img), (width, height)))
    cam = np.maximum(np.float32(scaled)[:, None], 0).mean(axis=1)
    result = []
    for img in cam:
        img = img - np.min(img)
        result.append(img / (1e-7 + np.max(img)))
    return np.float32(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "Tests" / "Fixtures" / "cam")
    parser.add_argument("--only", choices=["lrp-bottleneck", "cam-bottleneck"],
                        help="write only these cases into the existing manifest")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    np.random.seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out
    if args.only is not None:
        path = out / "manifest.json"
        manifest = json.loads(path.read_text())
        new = bottleneck_lrp_cases(out) if args.only == "lrp-bottleneck" else bottleneck_cam_cases(out)
        names = {case["name"] for case in new}
        manifest["cases"] = [case for case in manifest["cases"] if case["name"] not in names] + new
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote {len(new)} cases into {path}")
        return

    def save(file: str, array: np.ndarray, dtype: str = "<f4") -> list[int]:
        np.save(out / file, np.ascontiguousarray(array, dtype=dtype))
        return list(array.shape)

    # Models: tools/resnet.py's and torchvision's, same weights.
    model = resnet.deterministic_model("resnet34", 1000)
    tv_model = torchvision.models.resnet34(weights=None, num_classes=1000)
    ours_keys, tv_keys = list(model.state_dict()), list(tv_model.state_dict())
    assert ours_keys == tv_keys, "state-dict keys differ from torchvision's"
    ours_names = [name for name, _ in model.named_modules()]
    tv_names = [name for name, _ in tv_model.named_modules()]
    assert ours_names == tv_names, f"module names differ: {set(ours_names) ^ set(tv_names)}"
    tv_model.load_state_dict(resnet.deterministic_state_dict(tv_model))
    tv_model.eval()
    x = torch.from_numpy(resnet.deterministic_input("input", (1, 3, 224, 224)))
    with torch.no_grad():
        logits = model(x)
        tv_logits = tv_model(x)
    logit_diff = float((logits - tv_logits).abs().max())
    target = int(logits.argmax(dim=1)[0])
    assert int(tv_logits.argmax(dim=1)[0]) == target
    print(f"tools/resnet.py vs torchvision resnet34: same module names and keys; logits max |diff| {logit_diff:.3g}; "
          f"target {target}")
    model_check = {"module_names_equal": True, "state_dict_keys_equal": True, "logits_max_abs_diff": logit_diff,
                   "logit_scale": float(logits.abs().max())}
    r34 = {"arch": "resnet34", "num_classes": 1000, "input": {"key": "input", "shape": [1, 3, 224, 224]}}
    height, width = x.shape[-2:]
    cases = []

    # ------------------------------------------------------------------ pytorch-grad-cam
    for method, cls, layer_name, options in CAMS:
        torch.manual_seed(0)
        layer = model.get_submodule(layer_name)
        cam = cls(model=model, target_layers=[layer], **({"batch_size": 32} if cls is AblationCAM else {}))
        if cls is ScoreCAM:
            cam.batch_size = options["batch-size"]  # ScoreCAM reads self.batch_size (default 16)
        raws, weights = [], []
        get_cam_image, get_cam_weights = cam.get_cam_image, getattr(cam, "get_cam_weights", None)

        def recording_image(*a, **k):
            result = get_cam_image(*a, **k)
            raws.append(np.array(result, dtype=np.float32, copy=True))
            return result

        def recording_weights(*a, **k):
            result = get_cam_weights(*a, **k)
            weights.append(np.array(result, dtype=np.float32, copy=True))
            return result

        cam.get_cam_image = recording_image
        cam.get_cam_weights = recording_weights
        final = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
        cam.activations_and_grads.release()
        assert len(raws) == 1
        raw = raws[0][:, None]
        mine = postprocess(raws[0], width, height)
        assert final.shape == (1, height, width) and final.dtype == np.float32
        assert np.array_equal(mine, final), f"{method}: postprocess differs by {np.abs(mine - final).max()}"
        # cv2's resize against PyTorch's bilinear (align_corners=False) on the step-2 map.
        step2 = np.maximum(raws[0], 0)
        step2 = (step2 - step2.min(axis=(1, 2), keepdims=True))
        step2 = step2 / (1e-7 + step2.max(axis=(1, 2), keepdims=True))
        resized = np.float32([cv2.resize(np.float32(img), (width, height)) for img in step2])
        torch_resized = F.interpolate(torch.from_numpy(np.float32(step2))[:, None], (height, width), mode="bilinear",
                                      align_corners=False)[:, 0].numpy()
        cv2_vs_torch = float(np.abs(resized - torch_resized).max())
        name = f"r34_{method.replace('-', '_')}_{layer_name}"
        case = {"name": name, "library": GRAD_CAM_LIBRARY, **r34, "method": method, "layer": layer_name,
                "layer_input": False, "neuron": None, "options": options, "targets": [target],
                "raw_output": f"{name}_raw.npy", "raw_shape": save(f"{name}_raw.npy", raw),
                "final_output": f"{name}_final.npy", "final_shape": save(f"{name}_final.npy", final),
                "postprocess": POSTPROCESS, "cv2_vs_torch_bilinear_max_abs": cv2_vs_torch}
        if weights:
            case["weights_output"] = f"{name}_weights.npy"
            case["weights_shape"] = save(f"{name}_weights.npy", weights[0])
        if method == "eigen-cam":
            case["note"] = "SVD sign is arbitrary: compare raw up to a global sign per image"
        print(f"{name}: raw {raw.shape} [{raw.min():.4g}, {raw.max():.4g}], final {final.shape}; "
              f"cv2 vs torch bilinear {cv2_vs_torch:.3g}")
        if method == "grad-cam" and layer_name == "layer4":
            img = np.clip(x[0].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN, 0, 1).astype(np.float32)
            overlay = show_cam_on_image(img, final[0], use_rgb=True)
            assert overlay.dtype == np.uint8
            save("r34_overlay_image.npy", img)
            case["overlay"] = {"output": f"{name}_overlay.npy", "shape": save(f"{name}_overlay.npy", overlay, "u1"),
                               "dtype": "uint8", "image": "r34_overlay_image.npy",
                               "call": "show_cam_on_image(img, final[0], use_rgb=True)  # COLORMAP_JET, "
                                       "image_weight 0.5"}
        cases.append(case)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_JET)
    save("cv2_colormap_jet.npy", cv2.cvtColor(lut, cv2.COLOR_BGR2RGB).reshape(256, 3), "u1")

    # ------------------------------------------------------------------ Zennit LRP
    composites = lrp_composites()
    one_hot = torch.eye(1000)[[target]]
    for composite_name, make, settings in composites:
        composite = make([ResNetCanonizer()])
        with Gradient(model=tv_model, composite=composite) as attributor:
            output, relevance = attributor(x, one_hot)
        with torch.no_grad():  # the canonizer and hooks are gone again
            assert torch.equal(tv_model(x), tv_logits)
        name = f"r34_lrp_{composite_name.replace('-', '_')}"
        logit, total = float(output[0, target]), float(relevance.sum())
        cases.append({"name": name, "library": f"zennit {zennit_version()}", **r34, "model": "torchvision.models.resnet34 + tools/resnet.py weights",
                      "method": "lrp", "layer": None, "layer_input": False, "neuron": None,
                      "options": {"composite": composite_name, **settings}, "canonizer": "ResNetCanonizer",
                      "targets": [target], "output": f"{name}.npy", "final_output": f"{name}.npy",
                      "shape": save(f"{name}.npy", relevance.detach().numpy()),
                      "logit": logit, "relevance_sum": total})
        print(f"{name}: logit {logit:.4g}, relevance sum {total:.4g}, |R| max {float(relevance.abs().max()):.4g}")

    cases += bottleneck_lrp_cases(out)
    cases += bottleneck_cam_cases(out)

    manifest = {"generator": "tools/golden_cam.py", "torch": torch.__version__, "torchvision": torchvision.__version__,
                "opencv": cv2.__version__, "libraries": [GRAD_CAM_LIBRARY, f"zennit {zennit_version()}"],
                "model_check": model_check, "cases": cases}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(cases)} cases")


def lrp_composites() -> list:
    """Zennit's composites as (CLI name, factory taking the canonizers, settings for the manifest)."""
    low = torch.from_numpy((0 - IMAGENET_MEAN) / IMAGENET_STD).reshape(1, 3, 1, 1)
    high = torch.from_numpy((1 - IMAGENET_MEAN) / IMAGENET_STD).reshape(1, 3, 1, 1)
    return [
        ("epsilon-plus-flat", lambda c: EpsilonPlusFlat(canonizers=c), {"epsilon": 1e-6, "stabilizer": 1e-6}),
        ("epsilon-gamma-box", lambda c: EpsilonGammaBox(low=low, high=high, canonizers=c),
         {"epsilon": 1e-6, "gamma": 0.25, "stabilizer": 1e-6, "low": low.flatten().tolist(),
          "high": high.flatten().tolist()}),
        ("epsilon-alpha2-beta1", lambda c: EpsilonAlpha2Beta1(canonizers=c),
         {"epsilon": 1e-6, "alpha": 2, "beta": 1, "stabilizer": 1e-6}),
        ("epsilon-plus", lambda c: EpsilonPlus(canonizers=c), {"epsilon": 1e-6, "stabilizer": 1e-6}),
    ]


def bottleneck_cam_cases(out: Path) -> list[dict]:
    """pytorch-grad-cam on ResNet50 (Bottleneck blocks, 2048 channels in layer4), tools/resnet.py's
    deterministic weights with 20 classes, one 96×96 input (key ``r50cam``), its predicted class: the raw
    maps of the CAMs whose cost does not grow with the channels times the network (Score-CAM's
    2048 full passes would dominate the test suite; its code path is the one ResNet34 checks)."""
    model = resnet.deterministic_model("resnet50", 20)
    x = torch.from_numpy(resnet.deterministic_input("r50cam", (1, 3, 96, 96)))
    desc = {"arch": "resnet50", "num_classes": 20, "input": {"key": "r50cam", "shape": [1, 3, 96, 96]}}
    with torch.no_grad():
        target = int(model(x).argmax(dim=1)[0])
    cases = []
    for method, cls, layer_name, options in CAMS:
        if layer_name != "layer4" or cls is ScoreCAM:
            continue
        torch.manual_seed(0)
        cam = cls(model=model, target_layers=[model.layer4], **({"batch_size": 32} if cls is AblationCAM else {}))
        raws = []
        get_cam_image = cam.get_cam_image

        def recording_image(*a, **k):
            result = get_cam_image(*a, **k)
            raws.append(np.array(result, dtype=np.float32, copy=True))
            return result

        cam.get_cam_image = recording_image
        final = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
        cam.activations_and_grads.release()
        name = f"r50_{method.replace('-', '_')}_layer4"
        raw = raws[0][:, None]
        np.save(out / f"{name}_raw.npy", np.ascontiguousarray(raw, dtype="<f4"))
        np.save(out / f"{name}_final.npy", np.ascontiguousarray(final, dtype="<f4"))
        case = {"name": name, "library": GRAD_CAM_LIBRARY, **desc, "method": method, "layer": "layer4",
                "layer_input": False, "neuron": None, "options": options, "targets": [target],
                "raw_output": f"{name}_raw.npy", "raw_shape": list(raw.shape),
                "final_output": f"{name}_final.npy", "final_shape": list(final.shape)}
        if method == "eigen-cam":
            case["note"] = "SVD sign is arbitrary: compare raw up to a global sign per image"
        cases.append(case)
        print(f"{name}: raw {raw.shape} [{raw.min():.4g}, {raw.max():.4g}]")
    return cases


def bottleneck_lrp_cases(out: Path) -> list[dict]:
    """Zennit on torchvision's resnet50 (Bottleneck blocks), a batch of two 64×64 inputs."""
    classes = 10
    tv_model = torchvision.models.resnet50(weights=None, num_classes=classes)
    tv_model.load_state_dict(resnet.deterministic_state_dict(tv_model))
    tv_model.eval()
    ours = resnet.deterministic_model("resnet50", classes)
    x = torch.from_numpy(resnet.deterministic_input("lrp_batch", (2, 3, 64, 64)))
    with torch.no_grad():
        logits = tv_model(x)
        assert torch.allclose(logits, ours(x), rtol=1e-4, atol=1e-4), "tools/resnet.py and torchvision disagree"
    # Row 0 explains its predicted class, row 1 another one: per-row targets.
    predicted = [int(t) for t in logits.argmax(dim=1)]
    targets = [predicted[0], (predicted[1] + 3) % classes]
    one_hot = torch.eye(classes)[targets]
    cases = []
    for composite_name, make, settings in lrp_composites():
        if composite_name not in ("epsilon-plus-flat", "epsilon-gamma-box"):
            continue
        with Gradient(model=tv_model, composite=make([ResNetCanonizer()])) as attributor:
            output, relevance = attributor(x, one_hot)
        name = f"r50_lrp_{composite_name.replace('-', '_')}"
        relevance = relevance.detach().numpy()
        np.save(out / f"{name}.npy", np.ascontiguousarray(relevance, dtype="<f4"))
        cases.append({"name": name, "library": f"zennit {zennit_version()}", "arch": "resnet50",
                      "num_classes": classes, "input": {"key": "lrp_batch", "shape": [2, 3, 64, 64]},
                      "model": "torchvision.models.resnet50 + tools/resnet.py weights", "method": "lrp",
                      "layer": None, "layer_input": False, "neuron": None,
                      "options": {"composite": composite_name, **settings}, "canonizer": "ResNetCanonizer",
                      "targets": targets, "output": f"{name}.npy", "final_output": f"{name}.npy",
                      "shape": list(relevance.shape), "relevance_sum": float(relevance.sum())})
        print(f"{name}: targets {targets}, relevance sum {float(relevance.sum()):.4g}")
    return cases


def zennit_version() -> str:
    from importlib.metadata import version
    return version("zennit")


if __name__ == "__main__":
    main()
