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
  * Occlusion accuracy (``--only occlusion`` regenerates every occlusion case, or those named
    by ``--cases a,b``, and merges them into the manifest): ResNet34 at 224x224 on the
    committed photo (``Tests/Fixtures/images/photo.torchvision.npy``: the manifest's
    ``input.file``, which then replaces the deterministic input, ``input.key`` only naming it),
    the seed's call: window (3,15,15), stride (3,8,8), baseline 0, predicted class; and
    ResNet18 (1000 classes) on a 63x83 input with window (3,11,7), stride (3,5,3), baseline 0
    (windows that do not tile the input: the last row and column of windows are cropped at the
    border; small enough for a debug-build test at every SIMD level). Both with the
    deterministic weights of keys prefixed ``layers-accuracy.`` (the manifest's
    ``weights.key_prefix``), so they are not the weights the other tests use; the prefix
    starts with "layer" so that ``DeterministicWeights``' per-key rules (residual-closing batch
    norms damped) still apply.
  * Every occlusion case is also run by Captum in float64 (``model.double()``,
    ``input.double()``, the same call), saved as ``<name>_f64.npy`` (float64, ``<f8``); the
    manifest's ``float64`` records that file and Captum float32's relative L2 distance to it
    (``captum_float32_rel_l2``), the yardstick for Elucidate's own distance.
  * Surrogates (``--only surrogates`` regenerates just these and merges them into the
    manifest; needs scikit-learn): the same ResNet18 and target on a 4x4 grid, with the input
    times 8 (exact in float32; the manifest's ``input.scale``). At scale 1 the target's logit
    moves by only 0.29 between baseline and input, and Lasso's alpha = 0.01 keeps just one of
    the 16 features; at scale 8 it moves by 2.7 and Lasso zeroes two. KernelShap with 5000 samples
    (torch.manual_seed(0)); Lime with its defaults (Lasso alpha 0.01, exponential cosine
    kernel of width 1) and Lime with SkLearnLinearRegression, 2000 samples each from
    torch.manual_seed(1), so both fit the same samples. Compared by correlation. Each case
    also records the rows Captum fitted its surrogate to, ``*_fit.npy`` float32 (samples, 3):
    the coalition as a bit mask (bit f = feature f on, exact below 2^24), the target's logit
    and the sample weight; and, in the manifest's ``fit``, scikit-learn's fits of those rows
    in float64 (LinearRegression; Lasso(alpha=0.01) converged to tol 1e-12, and with its
    defaults, tol 1e-4, as Captum runs it), so the Swift solvers can be checked on the very
    same problem.

Models run in eval mode, float32, on the CPU with 2 threads.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import FeatureAblation, KernelShap, Lime, Occlusion, ShapleyValueSampling

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402


def grid_mask(cells: int, height: int, width: int) -> torch.Tensor:
    y = torch.arange(height).reshape(height, 1) * cells // height
    x = torch.arange(width).reshape(1, width) * cells // width
    return (y * cells + x).reshape(1, 1, height, width)


class RecordingSurrogate:
    """Wraps a Captum interpretable model and keeps the rows it is fitted to."""

    def __init__(self, inner):
        self.inner = inner
        self.rows = None

    def fit(self, train_data, **kwargs):
        assert len(train_data) == 1, "Captum fits its surrogate on one batch holding every sample"
        coalitions, outputs, weights = next(iter(train_data))
        self.rows = (coalitions.numpy().copy(), outputs.numpy().copy(), weights.numpy().copy())
        return self.inner.fit(train_data, **kwargs)

    def representation(self):
        return self.inner.representation()


#: Key prefix of the occlusion-accuracy weights (see the module docstring).
ACCURACY_KEY_PREFIX = "layers-accuracy."


def prefixed_deterministic_model(arch: str, num_classes: int, prefix: str) -> torch.nn.Module:
    """``resnet.deterministic_model`` with every tensor's values those of key ``prefix + key``."""
    model = resnet.build(arch, num_classes)
    state = {key: value.clone() if not value.is_floating_point()
             else torch.from_numpy(resnet.deterministic_parameter(prefix + key, tuple(value.shape)))
             for key, value in model.state_dict().items()}
    model.load_state_dict(state)
    return model.eval()


def occlusion(name, save, model_desc, model, x, window, stride, baseline, target, per_eval):
    """Captum's Occlusion in float32 (the golden) and in float64 (``<name>_f64.npy``)."""
    if save.cases is not None and name not in save.cases:
        return
    kwargs = {"sliding_window_shapes": tuple(window), "strides": tuple(stride), "baselines": baseline,
              "target": target, "perturbations_per_eval": per_eval}
    with torch.no_grad():
        a32 = Occlusion(model).attribute(x, **kwargs)
        model64 = copy.deepcopy(model).double()
        a64 = Occlusion(model64).attribute(x.double(), **kwargs)
    a64 = a64.numpy()
    distance = float(np.linalg.norm(a32.numpy().astype(np.float64) - a64) / np.linalg.norm(a64))
    file64 = f"{name}_f64.npy"
    np.save(save.out / file64, np.ascontiguousarray(a64, dtype="<f8"))
    print(f"{name}: Captum float32 vs float64: relative L2 {distance:.3g}")
    targets = target.tolist() if isinstance(target, torch.Tensor) else [target]
    save(name, model_desc, "occlusion", {"window": list(window), "stride": list(stride), "baseline": baseline}, targets,
         a32, float64={"output": file64, "captum_float32_rel_l2": distance})


def occlusion_cases(save) -> None:
    """Every occlusion case, each with its float64 reference."""
    with torch.no_grad():
        r34 = {"arch": "resnet34", "num_classes": 1000, "input": {"key": "input", "shape": [1, 3, 224, 224]}}
        model = resnet.deterministic_model("resnet34", 1000)
        x = torch.from_numpy(resnet.deterministic_input("input", (1, 3, 224, 224)))
        target = int(model(x).argmax(dim=1)[0])
        occlusion("r34_occlusion", save, r34, model, x, (3, 45, 45), (3, 40, 40), 0, target, 16)

        r18 = {"arch": "resnet18", "num_classes": 10, "input": {"key": "input", "shape": [2, 3, 64, 48]}}
        model = resnet.deterministic_model("resnet18", 10)
        x = torch.from_numpy(resnet.deterministic_input("input", (2, 3, 64, 48)))
        occlusion("r18_occlusion_baseline", save, r18, model, x, (1, 9, 7), (1, 5, 4), 0.25, torch.tensor([3, 7]), 8)

        # The seed's call on a photo, and odd windows on an odd size, with their own weights.
        weights = {"key_prefix": ACCURACY_KEY_PREFIX}
        photo = "images/photo.torchvision.npy"
        x = torch.from_numpy(np.load(Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / photo))
        model = prefixed_deterministic_model("resnet34", 1000, ACCURACY_KEY_PREFIX)
        target = int(model(x).argmax(dim=1)[0])
        assert int(model.double()(x.double()).argmax(dim=1)[0]) == target
        model.float()
        occlusion("r34_occlusion_seed", save, {"arch": "resnet34", "num_classes": 1000, "weights": weights,
                                               "input": {"key": "photo", "file": photo, "shape": list(x.shape)}},
                  model, x, (3, 15, 15), (3, 8, 8), 0, target, 16)

        shape = (1, 3, 63, 83)
        x = torch.from_numpy(resnet.deterministic_input("occlusion-odd", shape))
        model = prefixed_deterministic_model("resnet18", 1000, ACCURACY_KEY_PREFIX)
        target = int(model(x).argmax(dim=1)[0])
        occlusion("r18_occlusion_odd", save, {"arch": "resnet18", "num_classes": 1000, "weights": weights,
                                              "input": {"key": "occlusion-odd", "shape": list(shape)}},
                  model, x, (3, 11, 7), (3, 5, 3), 0, target, 16)


def classic_cases(out: Path, save) -> None:
    """FeatureAblation and ShapleyValueSampling (the occlusion cases are ``occlusion_cases``)."""
    with torch.no_grad():
        r34 = {"arch": "resnet34", "num_classes": 1000, "input": {"key": "input", "shape": [1, 3, 224, 224]}}
        model = resnet.deterministic_model("resnet34", 1000)
        x = torch.from_numpy(resnet.deterministic_input("input", (1, 3, 224, 224)))
        target = int(model(x).argmax(dim=1)[0])
        save("r34_feature_ablation_grid", r34, "feature-ablation", {"grid": 4}, [target],
             FeatureAblation(model).attribute(x, feature_mask=grid_mask(4, 224, 224), target=target,
                                              perturbations_per_eval=16))

        r18 = {"arch": "resnet18", "num_classes": 10, "input": {"key": "input", "shape": [2, 3, 64, 48]}}
        model = resnet.deterministic_model("resnet18", 10)
        x = torch.from_numpy(resnet.deterministic_input("input", (2, 3, 64, 48)))
        t = torch.tensor([3, 7])
        c = torch.arange(3).reshape(1, 3, 1, 1)
        mask = (c * 7 + grid_mask(3, 64, 48) * 2 + 5).to(torch.int32)  # sparse, unordered-looking ids
        np.save(out / "r18_feature_mask.npy", mask.numpy().astype("<i4"))
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


def sklearn_fits(coalitions: np.ndarray, outputs: np.ndarray, weights: np.ndarray, surrogate: str) -> dict:
    """scikit-learn's fits of Captum's surrogate rows, in float64."""
    from sklearn.linear_model import Lasso, LinearRegression

    x, y, w = coalitions.astype(np.float64), outputs.astype(np.float64), weights.astype(np.float64)

    def described(model):
        model.fit(x, y, sample_weight=w)
        return {"intercept": float(model.intercept_), "coefficients": [float(c) for c in model.coef_]}

    if surrogate == "least-squares":
        return {"least_squares": described(LinearRegression())}
    return {"lasso": described(Lasso(alpha=0.01, tol=1e-12, max_iter=1_000_000)),
            "lasso_sklearn_defaults": described(Lasso(alpha=0.01))}


def surrogate_cases(out: Path, save) -> None:
    """KernelShap and Lime (both surrogates) with the rows their surrogates were fitted to."""
    import sklearn

    scale = 8
    features = 16
    r18 = {"arch": "resnet18", "num_classes": 10, "input": {"key": "input", "shape": [1, 3, 64, 48], "scale": scale}}
    model = resnet.deterministic_model("resnet18", 10)
    x = torch.from_numpy(resnet.deterministic_input("input", (1, 3, 64, 48))) * scale
    mask = grid_mask(4, 64, 48)
    written = {}

    def run(name, method, options, explainer, samples, seed, surrogate, rows_file):
        recorder = RecordingSurrogate(explainer.interpretable_model)
        explainer.interpretable_model = recorder
        torch.manual_seed(seed)
        attributions = explainer.attribute(x, feature_mask=mask, target=3, n_samples=samples, perturbations_per_eval=100)
        coalitions, outputs, weights = recorder.rows
        assert coalitions.shape == (samples, features)
        bits = (coalitions.astype(np.int64) << np.arange(features)).sum(axis=1)
        rows = np.stack([bits.astype(np.float32), outputs, weights], axis=1)
        if rows_file in written:
            # A second surrogate on the same seed: the same samples, so the same rows.
            assert np.array_equal(written[rows_file], rows), f"{name}: rows differ from {rows_file}'s"
        written[rows_file] = rows
        np.save(out / rows_file, np.ascontiguousarray(rows, dtype="<f4"))
        fits = sklearn_fits(coalitions, outputs, weights, surrogate)
        captum = [float(attributions[0, 0].flatten()[(mask.flatten() == f).nonzero()[0, 0]]) for f in range(features)]
        for label, fit in fits.items():
            reference = np.array(fit["coefficients"])
            error = np.linalg.norm(np.array(captum) - reference) / np.linalg.norm(reference)
            print(f"{name}: Captum (sklearn in float32) vs sklearn {label} in float64: relative L2 {error:.3g}")
        save(name, r18, method, {**options, "grid": 4, "samples": samples, "seed": seed}, [3], attributions,
             fit={"data": rows_file, "features": features, "sklearn": sklearn.__version__, **fits})

    with torch.no_grad():
        run("r18_kernel_shap_grid4", "kernel-shap", {}, KernelShap(model), 5000, 0, "least-squares",
            "r18_kernel_shap_grid4_fit.npy")
        for surrogate, explainer in [("lasso", Lime(model)),
                                     ("least-squares", Lime(model, interpretable_model=SkLearnLinearRegression()))]:
            options = {"surrogate": surrogate, "alpha": 0.01, "kernel-width": 1.0} if surrogate == "lasso" else \
                {"surrogate": surrogate, "kernel-width": 1.0}
            run(f"r18_lime_{surrogate.replace('-', '_')}_grid4", "lime", options, explainer, 2000, 1, surrogate,
                "r18_lime_grid4_fit.npy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "Tests" / "Fixtures" / "perturbation")
    parser.add_argument("--only", choices=["surrogates", "occlusion"],
                        help="regenerate only this section; the manifest keeps the other cases")
    parser.add_argument("--cases", help="with --only occlusion: only these cases (comma-separated names)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = []

    def save(name, model_desc, method, options, targets, attributions, **extra):
        file = f"{name}.npy"
        np.save(args.out / file, np.ascontiguousarray(attributions.detach().numpy(), dtype="<f4"))
        cases.append({"name": name, **model_desc, "method": method, "options": options, "targets": targets, "output": file,
                      **extra})
        print(f"{name}: |attr| max {float(attributions.abs().max()):.4g}")

    save.out = args.out
    save.cases = set(args.cases.split(",")) if args.cases else None
    if args.only in (None, "occlusion"):
        occlusion_cases(save)
    if args.only is None:
        classic_cases(args.out, save)
    if args.only in (None, "surrogates"):
        surrogate_cases(args.out, save)

    manifest_path = args.out / "manifest.json"
    if args.only is not None:
        fresh = {case["name"] for case in cases}
        cases = [case for case in json.loads(manifest_path.read_text())["cases"] if case["name"] not in fresh] + cases
    manifest = {"generator": "tools/golden_perturbation.py", "torch": torch.__version__,
                "captum": __import__("captum").__version__, "cases": cases}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
