"""ResNet 18/34/50/101/152 with torchvision's exact module names, plus reproducible weights.

The modules mirror ``torchvision.models.resnet`` (v1.5: in a Bottleneck the stride sits on
the 3x3 ``conv2``), so ``model.state_dict()`` has torchvision's keys and shapes, e.g.

    conv1.weight                    (64, 3, 7, 7)
    bn1.{weight,bias,running_mean,running_var}   (64,)      bn1.num_batches_tracked  ()
    layer1.0.conv1.weight           (64, 64, 3, 3)          (BasicBlock)
    layer2.0.downsample.0.weight    (128, 64, 1, 1)         downsample.1 is its BatchNorm
    fc.weight                       (num_classes, 512 * expansion)
    fc.bias                         (num_classes,)

Convolution weights are (out, in, kH, kW); images are NCHW float32.

``deterministic_state_dict`` and ``deterministic_input`` reproduce, bit for bit, the formula
of ``Tests/TestSupport/DeterministicWeights.swift``, so Swift tests regenerate the same weights
and inputs without any weight file being committed.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

__all__ = [
    "ARCHS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "build",
    "deterministic_input",
    "deterministic_model",
    "deterministic_parameter",
    "deterministic_state_dict",
    "deterministic_values",
    "fastai_deterministic_model",
    "fastai_model",
    "fastai_torchvision_name",
    "fnv1a32",
]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """conv1 (3x3, stride) - bn1 - relu - conv2 (3x3) - bn2, + identity or downsample, relu."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """conv1 (1x1) - bn1 - relu - conv2 (3x3, stride) - bn2 - relu - conv3 (1x1, 4x planes) - bn3,
    + identity or downsample, relu (torchvision's ResNet v1.5)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet: input (N, 3, H, W) -> logits (N, num_classes).

    Stem: conv1 7x7/2 pad 3 (no bias), bn1, relu, maxpool 3x3/2 pad 1; then layer1..layer4
    (64, 128, 256, 512 planes; strides 1, 2, 2, 2), avgpool AdaptiveAvgPool2d(1), flatten, fc.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


#: Architecture name -> (block, blocks per layer), as in torchvision.
ARCHS: dict[str, tuple[type[nn.Module], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


def build(arch: str, num_classes: int = 1000) -> ResNet:
    """An untrained ResNet named ``arch`` (e.g. ``"resnet34"``)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    block, layers = ARCHS[arch]
    return ResNet(block, layers, num_classes)


class AdaptiveConcatPool2d(nn.Module):
    """fastai's concat pooling: ``cat([AdaptiveMaxPool2d(1)(x), AdaptiveAvgPool2d(1)(x)], 1)``."""

    def __init__(self):
        super().__init__()
        self.mp = nn.AdaptiveMaxPool2d(1)
        self.ap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mp(x), self.ap(x)], 1)


def fastai_model(arch: str, num_classes: int, hidden: int = 512) -> nn.Sequential:
    """What fastai's ``vision_learner(dls, resnetNN)`` builds, with the same state-dict keys:
    ``nn.Sequential(body, head)`` where body is the torchvision ResNet without avgpool and fc
    (``0.0`` conv1, ``0.1`` bn1, ``0.2`` relu, ``0.3`` maxpool, ``0.4``..``0.7`` layer1..4) and
    head is ``create_head(nf, num_classes)`` with fastai's defaults (concat pool, flatten,
    BatchNorm1d, Dropout(0.25), Linear(2nf, 512, bias=False), ReLU, BatchNorm1d, Dropout(0.5),
    Linear(512, num_classes, bias=False)): keys ``1.2.*``, ``1.4.weight``, ``1.6.*``, ``1.8.weight``."""
    model = build(arch, num_classes)
    body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                         model.layer1, model.layer2, model.layer3, model.layer4)
    nf = model.fc.in_features
    head = nn.Sequential(
        AdaptiveConcatPool2d(), nn.Flatten(),
        nn.BatchNorm1d(2 * nf), nn.Dropout(0.25), nn.Linear(2 * nf, hidden, bias=False), nn.ReLU(inplace=True),
        nn.BatchNorm1d(hidden), nn.Dropout(0.5), nn.Linear(hidden, num_classes, bias=False),
    )
    return nn.Sequential(body, head)


_FASTAI_BODY = {"0.0.": "conv1.", "0.1.": "bn1.", "0.4.": "layer1.", "0.5.": "layer2.", "0.6.": "layer3.", "0.7.": "layer4."}


def fastai_torchvision_name(key: str) -> str:
    """A fastai body key in torchvision's names (``0.4.0.conv1.weight`` -> ``layer1.0.conv1.weight``);
    head keys (``1.*``) unchanged. ``ResNetKeyLayout.torchvisionName`` in Swift."""
    for fastai, torchvision in _FASTAI_BODY.items():
        if key.startswith(fastai):
            return torchvision + key[len(fastai):]
    return key


def fastai_deterministic_model(arch: str, num_classes: int) -> nn.Sequential:
    """``fastai_model`` with ``DeterministicWeights.stateDict`` for the fastai head: every body
    tensor takes the deterministic value of its torchvision name, every head tensor its own key's."""
    model = fastai_model(arch, num_classes)
    state = OrderedDict()
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            state[key] = value.clone()
        else:
            state[key] = torch.from_numpy(deterministic_parameter(fastai_torchvision_name(key), tuple(value.shape)))
    model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------------------------------
# Deterministic weights: the formula of Tests/TestSupport/DeterministicWeights.swift.
#
# Element i (C order) of a tensor named `key`:
#   x = (fnv1a32(key) + i * 0x9E3779B9) mod 2^32
#   u = fmix32(x) / 2^31 - 1                 (exact in float64, in [-1, 1))
#   value = float32(offset + scale * u)      (float64 product and sum, rounded to float32 once)
# All integer work is done in uint64 with explicit 32-bit masks; the float64 operations are
# IEEE, as in Swift, so both sides produce identical bits.
# ---------------------------------------------------------------------------------------

_MASK32 = np.uint64(0xFFFFFFFF)


def fnv1a32(key: str) -> int:
    """32-bit FNV-1a of the key's UTF-8 bytes."""
    h = 0x811C9DC5
    for byte in key.encode("utf-8"):
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser on uint64 arrays holding 32-bit values."""
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & _MASK32
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & _MASK32
    h = h ^ (h >> np.uint64(16))
    return h


def deterministic_values(key: str, count: int, scale: float, offset: float = 0.0) -> np.ndarray:
    """``count`` float32 values ``offset + scale * u`` for the tensor named ``key`` (1-D)."""
    seed = np.uint64(fnv1a32(key))
    i = np.arange(count, dtype=np.uint64) & _MASK32
    x = (seed + ((i * np.uint64(0x9E3779B9)) & _MASK32)) & _MASK32
    u = _fmix32(x).astype(np.float64) / 2147483648.0 - 1.0
    return (np.float64(offset) + np.float64(scale) * u).astype(np.float32)


def _scale_and_offset(key: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """The per-key rule of ``DeterministicWeights.parameter``: by the key's last component
    (Swift's ``split(separator: ".")``, which drops empty pieces) and the tensor's rank."""
    parts = [p for p in key.split(".") if p]
    name = parts[-1] if parts else key
    rank = len(shape)
    fan_in = math.prod(shape[1:]) if rank >= 2 else 1
    if name == "weight" and rank == 4:
        return math.sqrt(6.0 / fan_in), 0.0  # He-uniform convolution
    if name == "weight" and rank == 2:
        return math.sqrt(3.0 / fan_in), 0.0  # linear
    if name == "weight" and rank == 1:
        # Batch-norm gamma; those closing a residual branch (bn2, bn3, downsample.1 inside
        # layerN) are damped so activations stay O(1) through deep stacks.
        if parts[0].startswith("layer") and len(parts) >= 2 and parts[-2] in ("bn2", "bn3", "1"):
            return 0.06, 0.3
        return 0.2, 1.0
    if name == "running_var":
        return 0.5, 1.0
    return 0.1, 0.0  # biases, batch-norm beta, running_mean


def deterministic_parameter(key: str, shape: tuple[int, ...] | list[int]) -> np.ndarray:
    """``DeterministicWeights.parameter(key:shape:)``: a float32 array of ``shape`` (C order)."""
    shape = tuple(int(d) for d in shape)
    scale, offset = _scale_and_offset(key, shape)
    return deterministic_values(key, math.prod(shape), scale, offset).reshape(shape)


def deterministic_input(key: str = "input", shape: tuple[int, ...] | list[int] = (1, 3, 224, 224)) -> np.ndarray:
    """``DeterministicWeights.input(key:shape:)``: float32 values in [-2, 2) of ``shape`` (NCHW)."""
    shape = tuple(int(d) for d in shape)
    return deterministic_values(key, math.prod(shape), 2.0).reshape(shape)


def deterministic_state_dict(model: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """The model's state dict with every parameter and float buffer (running_mean,
    running_var) replaced by its deterministic float32 value; ``num_batches_tracked``
    (and any other integer buffer) is kept as is. Keys and shapes are the model's."""
    result: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            result[key] = value.clone()
            continue
        result[key] = torch.from_numpy(deterministic_parameter(key, tuple(value.shape)))
    return result


def deterministic_model(arch: str, num_classes: int = 1000) -> ResNet:
    """``build(arch, num_classes)`` loaded with ``deterministic_state_dict``, in eval mode."""
    model = build(arch, num_classes)
    model.load_state_dict(deterministic_state_dict(model))
    return model.eval()


def comparison_case(work: "Path", size: int = 224) -> tuple["Path", "Path", ResNet, torch.Tensor, int]:
    """The case the ``compare_*.py`` scripts time: ResNet34 with deterministic weights (1000
    classes) written by ``export_safetensors.py`` to ``work/resnet34.safetensors``, the
    deterministic input ``(1, 3, size, size)`` saved to ``work/x.npy``; returns both paths, the
    model, the input tensor and its predicted class."""
    import subprocess
    import sys
    from pathlib import Path

    work = Path(work)
    weights = work / "resnet34.safetensors"
    subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "export_safetensors.py"), "--deterministic",
                    "resnet34", "--num-classes", "1000", "-o", str(weights)], check=True, stdout=subprocess.DEVNULL)
    x_np = deterministic_input("input", (1, 3, size, size))
    np.save(work / "x.npy", x_np)
    model = deterministic_model("resnet34", 1000)
    x = torch.from_numpy(x_np)
    with torch.no_grad():
        target = int(model(x).argmax(dim=1)[0])
    return weights, work / "x.npy", model, x, target
