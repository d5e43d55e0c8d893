#!/usr/bin/env python3
"""Trains Elucidate's built-in model: a small ResNet on Fashion-MNIST, on the CPU.

Data: Debian's ``dataset-fashion-mnist`` package (IDX files, gzip), found with
``dpkg -L dataset-fashion-mnist`` (``tools/setup-debian.sh --train`` installs it).

Model: torchvision's ResNet layout (tools/resnet.py module names, BasicBlocks, 4 stages,
stride 2 at stages 2-4, downsample where stride or width changes) with
  * a small-image stem: 3x3 stride-1 ``conv1``, ``bn1``, ReLU, no max pool;
  * narrow widths ``WIDTHS`` (stem = layer1 width) and ``BLOCKS`` blocks per stage;
  * 3 input channels: the gray image replicated to R, G and B (the ``fashion-mnist``
    preprocessing preset converts any image to gray and replicates it).
Input normalisation: ``(p / 255 - MEAN) / STD`` on each channel (training-set statistics).

Training: fixed seeds, SGD with Nesterov momentum, one-cycle learning rate, random
horizontal flips and ±2-pixel shifts; three epochs (the default) take 15-20 minutes on two cores
(4 to 9 minutes an epoch, depending on what else runs) and reach 91.5 % test accuracy.

Writes (paths relative to the package root):
  Sources/Engine/Models/Resources/models/fashion-mnist-resnet.safetensors   float32 weights (a SwiftPM resource), __metadata__ with
      "format", "stem" ("small"), "labels" (JSON array), "preset" ("fashion-mnist"),
      "input" (how the channels are made), "dataset", "test_accuracy", "trained_by"
  Resources/images/<index>-<label>.png                 a handful of test images (gray PNG)
  Tests/Fixtures/builtin/test-slice-images.idx          uint8 (N, 28, 28): the first N test images
                                                        (IDX, uncompressed, as in the dataset)
  Tests/Fixtures/builtin/test-slice-labels.idx          uint8 (N,)
  Tests/Fixtures/builtin/test-slice-logits.npy          float32 (N, 10): PyTorch's logits
  Tests/Fixtures/builtin/manifest.json                  accuracy on the slice and the full test set

Usage: python3 tools/train_builtin.py [--epochs N] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
#: Training-set mean and standard deviation of p / 255 (Fashion-MNIST's well-known values,
#: recomputed and checked by this script).
MEAN = 0.2860
STD = 0.3530
WIDTHS = [16, 32, 64, 128]
BLOCKS = [1, 1, 1, 1]
SEED = 0
SLICE = 500
#: One test image of each class (the first of its class in the test set).
IMAGE_NAMES = {7: "sneaker", 9: "ankle-boot", 1: "trouser", 8: "bag", 3: "dress", 0: "t-shirt"}


class SmallResNet(nn.Module):
    """torchvision's ResNet (module names and all) with a small-image stem and given widths."""

    def __init__(self, widths: list[int], blocks: list[int], num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        make = resnet.ResNet._make_layer
        self.layer1 = make(self, resnet.BasicBlock, widths[0], blocks[0])
        self.layer2 = make(self, resnet.BasicBlock, widths[1], blocks[1], stride=2)
        self.layer3 = make(self, resnet.BasicBlock, widths[2], blocks[2], stride=2)
        self.layer4 = make(self, resnet.BasicBlock, widths[3], blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def dataset_dir() -> Path:
    try:
        files = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], check=True,
                               capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit("train_builtin: the Debian package dataset-fashion-mnist is not installed "
                         "(run tools/setup-debian.sh --train)")
    for f in files:
        if f.endswith("train-images-idx3-ubyte.gz"):
            return Path(f).parent
    raise SystemExit("train_builtin: dataset-fashion-mnist lists no train-images-idx3-ubyte.gz")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip): magic 0x0000080D with D dimensions of big-endian uint32, then uint8 data."""
    data = gzip.decompress(path.read_bytes())
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SystemExit(f"train_builtin: {path} is not an unsigned-byte IDX file")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if array.size != int(np.prod(shape)):
        raise SystemExit(f"train_builtin: {path} holds {array.size} bytes, header says {shape}")
    return array.reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed unsigned-byte IDX file (the format read_idx reads, without gzip)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    root = dataset_dir()
    prefix = "train" if split == "train" else "t10k"
    return read_idx(root / f"{prefix}-images-idx3-ubyte.gz"), read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 3, 28, 28), normalised as the preset does (float32 math)."""
    x = torch.from_numpy(images.astype(np.float32)) / 255
    x = (x - torch.tensor(MEAN, dtype=torch.float32)) / torch.tensor(STD, dtype=torch.float32)
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2), value=-MEAN / STD)
    dx, dy = torch.randint(0, 5, (2,), generator=generator).tolist()  # one shift per batch: cheap
    return padded[:, :, dy:dy + 28, dx:dx + 28]


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    model.eval()
    outputs = []
    with torch.no_grad():
        for i in range(0, len(images), 1000):
            outputs.append(model(to_input(images[i:i + 1000])))
    logits = torch.cat(outputs).numpy()
    return float((logits.argmax(1) == labels).mean()), logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)

    train_x, train_y = load("train")
    test_x, test_y = load("test")
    mean, std = float(train_x.mean() / 255), float((train_x / 255).std())
    print(f"train {train_x.shape} test {test_x.shape}; pixel mean {mean:.4f} std {std:.4f}")
    assert abs(mean - MEAN) < 5e-4 and abs(std - STD) < 5e-4, "MEAN/STD no longer match the data"

    model = SmallResNet(WIDTHS, BLOCKS)
    inputs = to_input(train_x)
    targets = torch.from_numpy(train_y.astype(np.int64))
    steps_per_epoch = (len(inputs) + args.batch - 1) // args.batch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, epochs=args.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(args.epochs):
        model.train()
        start = time.time()
        order = torch.randperm(len(inputs), generator=generator)
        total, correct, loss_sum = 0, 0, 0.0
        for step in range(steps_per_epoch):
            index = order[step * args.batch:(step + 1) * args.batch]
            x = augment(inputs[index], generator)
            y = targets[index]
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(loss.detach()) * len(y)
        accuracy, _ = evaluate(model, test_x, test_y)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {loss_sum / total:.4f} acc {correct / total:.4f}, "
              f"test acc {accuracy:.4f} ({time.time() - start:.0f} s)", flush=True)

    accuracy, _ = evaluate(model, test_x, test_y)
    slice_accuracy, slice_logits = evaluate(model, test_x[:SLICE], test_y[:SLICE])
    print(f"test accuracy {accuracy:.4f}; first {SLICE}: {slice_accuracy:.4f}")

    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items() if v.is_floating_point()}
    metadata = {
        "format": "pt",
        "stem": "small",
        "labels": json.dumps(LABELS),
        "preset": "fashion-mnist",
        "input": "gray replicated to 3 channels (R = G = B), 28x28, (p/255 - 0.2860) / 0.3530",
        "dataset": "Fashion-MNIST (Debian package dataset-fashion-mnist)",
        "test_accuracy": f"{accuracy:.4f}",
        "trained_by": "tools/train_builtin.py",
    }
    model_path = ROOT / "Sources" / "Engine" / "Models" / "Resources" / "models" / "fashion-mnist-resnet.safetensors"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(model_path), metadata=metadata)
    print(f"wrote {model_path.relative_to(ROOT)} ({model_path.stat().st_size} bytes)")

    # A handful of test images, as gray PNGs.
    from PIL import Image  # only needed here
    images_dir = ROOT / "Resources" / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for label, name in IMAGE_NAMES.items():
        index = int(np.flatnonzero(test_y == label)[0])
        Image.fromarray(test_x[index], mode="L").save(images_dir / f"{name}.png")
        print(f"wrote Resources/images/{name}.png (test image {index}, {LABELS[label]})")

    fixtures = ROOT / "Tests" / "Fixtures" / "builtin"
    fixtures.mkdir(parents=True, exist_ok=True)
    write_idx(fixtures / "test-slice-images.idx", test_x[:SLICE])
    write_idx(fixtures / "test-slice-labels.idx", test_y[:SLICE])
    np.save(fixtures / "test-slice-logits.npy", np.ascontiguousarray(slice_logits, dtype="<f4"))
    (fixtures / "manifest.json").write_text(json.dumps({
        "generator": "tools/train_builtin.py",
        "model": str(model_path.relative_to(ROOT)),
        "slice": f"the first {SLICE} images of the Fashion-MNIST test set",
        "slice_accuracy": slice_accuracy,
        "test_accuracy": accuracy,
        "epochs": args.epochs,
        "widths": WIDTHS,
        "blocks": BLOCKS,
        "torch": torch.__version__,
    }, indent=2) + "\n")
    print(f"wrote {fixtures.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
