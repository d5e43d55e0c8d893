"""Golden evaluation metrics for Elucidate's parity tests (issue 15: `elucidate evaluate`).

Regenerates ``Tests/Fixtures/evaluation/``: on ResNet34 (1000 classes) with the deterministic
weights of ``tools/resnet.py`` (bit for bit Swift's ``DeterministicWeights``) and the
deterministic input ``input`` of shape (1,3,56,56), the metrics computed from their
definitions with PyTorch and Captum 0.9, given the attributions, so the metric alone is tested:

    /work/venv/bin/python tools/golden_evaluation.py      # the pinned venv: tools/requirements.txt

The attributions are Captum's ``Saliency`` (abs) of the predicted class, saved as
``r34_saliency.npy``. 56x56 = 3136 pixels: with 128 steps, k*3136/128 = 24.5k, so every odd
step is a rounding half (Python's ``round`` goes to the even neighbour, and so does Elucidate).

Deletion and insertion (Petsiuk et al. 2018), exactly as issue 15 defines them: importance =
attribution summed over channels; order = ``torch.sort(importance, descending=True,
stable=True)`` (ties by increasing flat index); at step k = 0..S the first round(k*H*W/S)
pixels are replaced in every channel by the baseline (deletion) or revealed from the
all-baseline image (insertion); the score is the target's softmax probability; the AUC is
``numpy.trapezoid(curve, dx=1/S)``. RISE's blur baseline is the authors' code (eclique/RISE,
``evaluation.py``): ``gkern(11, 5)`` = ``scipy.ndimage.gaussian_filter`` of an 11x11 Dirac with
sigma 5 (SciPy's defaults: truncate 4.0, mode reflect), one kernel per channel, and
``conv2d(x, kern, padding=11 // 2)`` (zero padding). The blurred input is stored too
(``r34_blur.npy``).

Infidelity: ``captum.metrics.infidelity(model, perturb_func, x, saliency, target=t,
n_perturb_samples=S, normalize=...)`` with ``perturb_func`` returning the given perturbations
P (``r34_perturbations.npy``, (8,3,56,56), 0.2 * deterministic_input("perturbations")) and
x - P; normalize off and on. Sensitivity-max: ``captum.metrics.sensitivity_max(Saliency(model)
.attribute, x, perturb_func=lambda x, r: x + D, n_perturb_samples=4, target=t)`` with given
noise D (``r34_noise.npy``, (4,3,56,56), 0.05 * deterministic_input("noise")).

Map similarity (the sanity check's comparison, Adebayo et al. 2018): maps summed over
channels in float64; ``scipy.stats.spearmanr`` of the signed and of the absolute values;
``skimage.metrics.structural_similarity`` (defaults: 7x7 uniform window, K1 0.01, K2 0.03,
sample covariance) with ``data_range=1`` of the absolute values min-max scaled to [0, 1]. Pairs
(``maps``): Saliency (abs) of the predicted class against Saliency (signed) of class 500, and
both quantised to quarters (ties, for the average ranks).

Manifest cases: ``name``, ``metric``, ``options`` (CLI option names; file names relative to
the fixture folder), ``target``, and ``curve`` + ``auc`` (deletion, insertion), ``value``, or for metric
``similarity`` ``maps`` (two files) with ``spearman``, ``spearmanAbs`` and ``ssim``.
Models run in eval mode, float32, on the CPU with 2 threads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from captum.attr import Saliency
from captum.metrics import infidelity, sensitivity_max
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402


def gkern(klen: int, nsig: float, channels: int) -> torch.Tensor:
    """RISE's ``gkern``: a Dirac smoothed by SciPy, one kernel per channel (diagonal weight)."""
    dirac = np.zeros((klen, klen))
    dirac[klen // 2, klen // 2] = 1
    k = gaussian_filter(dirac, nsig)
    kern = np.zeros((channels, channels, klen, klen))
    for c in range(channels):
        kern[c, c] = k
    return torch.from_numpy(kern.astype("float32"))


def rise_blur(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.conv2d(x, gkern(11, 5, x.shape[1]), padding=11 // 2)


def removal_curve(model, x, attributions, target, steps, baseline, insertion):
    """The deletion (or insertion) curve of issue 15's definition, batched."""
    _, channels, height, width = x.shape
    importance = attributions[0].sum(0).flatten()
    order = torch.sort(importance, descending=True, stable=True).indices
    start, end = (baseline, x) if insertion else (x, baseline)
    images = []
    for k in range(steps + 1):
        n = round(k * height * width / steps)
        image = start.clone().reshape(channels, height * width)
        image[:, order[:n]] = end.reshape(channels, height * width)[:, order[:n]]
        images.append(image.reshape(1, channels, height, width))
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.cat(images)), dim=1)[:, target]
    curve = probabilities.numpy().astype(np.float64)
    return curve, float(np.trapezoid(curve, dx=1 / steps))


def compare_maps(reference: np.ndarray, other: np.ndarray) -> dict:
    """The sanity check's comparison: maps summed over channels (float64); Spearman of the
    signed and of the absolute values; SSIM (scikit-image defaults, data_range 1) of the
    absolute values min-max scaled to [0, 1]."""
    a, b = reference.astype(np.float64).sum(0), other.astype(np.float64).sum(0)

    def normalized(m):
        low, high = m.min(), m.max()
        return (m - low) / (high - low) if high > low else np.zeros_like(m)

    return {"spearman": float(spearmanr(a.ravel(), b.ravel()).statistic),
            "spearmanAbs": float(spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic),
            "ssim": float(structural_similarity(normalized(np.abs(a)), normalized(np.abs(b)), data_range=1.0))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "Tests" / "Fixtures" / "evaluation")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)

    def save_array(file: str, array) -> None:
        if isinstance(array, torch.Tensor):
            array = array.detach().numpy()
        np.save(args.out / file, np.ascontiguousarray(array, dtype="<f4"))

    model = resnet.deterministic_model("resnet34", 1000)
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    shape = (1, 3, 56, 56)
    x = torch.from_numpy(resnet.deterministic_input("input", shape))
    with torch.no_grad():
        target = int(model(x).argmax(1))
    saliency = Saliency(model).attribute(x, target=target)
    save_array("r34_saliency.npy", saliency)
    save_array("r34_blur.npy", rise_blur(x))
    baseline_image = torch.from_numpy(0.5 * resnet.deterministic_input("baseline", shape))
    save_array("r34_baseline.npy", baseline_image[0])
    perturbations = torch.from_numpy(0.2 * resnet.deterministic_input("perturbations", (8, 3, 56, 56)))
    save_array("r34_perturbations.npy", perturbations)
    noise = torch.from_numpy(0.05 * resnet.deterministic_input("noise", (4, 3, 56, 56)))
    save_array("r34_noise.npy", noise)

    cases = []
    model_desc = {"arch": "resnet34", "num_classes": 1000, "input": {"key": "input", "shape": list(shape)},
                  "attributions": "r34_saliency.npy", "target": target}

    removal = [
        ("r34_deletion_50_zero", "deletion", {}, 50, torch.zeros_like(x)),
        ("r34_insertion_50_blur", "insertion", {}, 50, rise_blur(x)),
        ("r34_deletion_128_half", "deletion", {"steps": 128, "baseline": "0.5"}, 128, torch.full_like(x, 0.5)),
        ("r34_insertion_20_image", "insertion", {"steps": 20, "baseline": "r34_baseline.npy"}, 20, baseline_image),
    ]
    for name, metric, options, steps, baseline in removal:
        curve, auc = removal_curve(model, x, saliency, target, steps, baseline, metric == "insertion")
        cases.append({"name": name, "metric": metric, "options": options, **model_desc,
                      "curve": [float(v) for v in curve], "auc": auc})
        print(f"{name}: auc {auc:.6g}, curve[0] {curve[0]:.4g}, curve[-1] {curve[-1]:.4g}")

    def given_perturbations(inputs):
        return perturbations, inputs - perturbations

    for normalize in (False, True):
        value = infidelity(model, given_perturbations, x, saliency, target=target,
                           n_perturb_samples=perturbations.shape[0], normalize=normalize)
        name = "r34_infidelity" + ("_normalized" if normalize else "")
        options = {"perturbations": "r34_perturbations.npy", "normalize": normalize}
        cases.append({"name": name, "metric": "infidelity", "options": options, **model_desc, "value": float(value)})
        print(f"{name}: {float(value):.6g}")

    def explain(inputs, target):
        return Saliency(model).attribute(inputs, target=target)

    value = sensitivity_max(explain, x, perturb_func=lambda inputs, radius: inputs + noise,
                            n_perturb_samples=noise.shape[0], target=target)
    cases.append({"name": "r34_sensitivity_max_saliency", "metric": "sensitivity-max", "method": "saliency",
                  "options": {"perturbations": "r34_noise.npy"}, **model_desc, "value": float(value)})
    print(f"r34_sensitivity_max_saliency: {float(value):.6g}")

    # Map pairs for Spearman and SSIM: Saliency of the predicted class against class 500's
    # (signed gradients, so signs differ), and the same maps quantised to quarters (many ties,
    # for the average ranks).
    other = Saliency(model).attribute(x, target=500, abs=False)
    save_array("r34_saliency_500.npy", other)
    pairs = [("r34_pair_saliency", "r34_saliency.npy", "r34_saliency_500.npy", saliency[0].numpy(), other[0].numpy())]
    quantised = [np.round(m * 4) / 4 for m in (saliency[0].numpy() / saliency.abs().max().item() * 8,
                                                  other[0].numpy() / other.abs().max().item() * 8)]
    save_array("r34_quantised_a.npy", quantised[0])
    save_array("r34_quantised_b.npy", quantised[1])
    pairs.append(("r34_pair_quantised", "r34_quantised_a.npy", "r34_quantised_b.npy", *quantised))
    for name, first, second, a, b in pairs:
        values = compare_maps(a, b)
        cases.append({"name": name, "metric": "similarity", "options": {}, **model_desc, "maps": [first, second],
                      **values})
        print(f"{name}: {values}")

    (args.out / "manifest.json").write_text(json.dumps({"cases": cases}, indent=2) + "\n")


if __name__ == "__main__":
    main()
