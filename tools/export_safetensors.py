#!/usr/bin/env python3
"""Converts a PyTorch state dict (.pth) to .safetensors for Elucidate, or writes
deterministic weights.

    python3 tools/export_safetensors.py model.pth -o model.safetensors \\
        [--arch resnet34] [--labels labels.txt] [--preset torchvision]
    python3 tools/export_safetensors.py --deterministic resnet34 --num-classes 1000 -o det.safetensors

Input: loaded with ``torch.load(path, map_location="cpu", weights_only=True)``. The state
dict may be the file itself or sit under a ``model`` or ``state_dict`` key (nested ones are
unwrapped too); leading ``module.`` prefixes (DataParallel) are stripped from every key.

Output: one tensor per state-dict key, C-contiguous. Floating-point tensors (F16, BF16,
F64, F32) are stored as F32; integer buffers such as BatchNorm's ``num_batches_tracked``
keep their dtype (I64), which Elucidate skips. Shapes are PyTorch's: convolution weights
(out, in, kH, kW), linear weights (out, in).

``__metadata__`` (all values strings): "format": "pt", plus "arch" (--arch or
--deterministic), "labels" (--labels FILE: one label per line, stored as a JSON array
string), "preset" (--preset), and any --meta KEY=VALUE.

With --arch naming a ResNet of tools/resnet.py, keys and shapes are checked against
torchvision's layout (num_classes taken from fc.weight) unless --no-check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resnet  # noqa: E402

PRESETS = ("torchvision", "fastai", "none")


def fail(message: str) -> NoReturn:
    print(f"export_safetensors: {message}", file=sys.stderr)
    raise SystemExit(1)


def unwrap_state_dict(obj: object) -> Mapping:
    """The state dict inside a checkpoint: ``obj`` itself or its ``model`` / ``state_dict``."""
    for _ in range(4):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in ("state_dict", "model") if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping):
        fail(f"expected a state dict (a mapping of names to tensors), found {type(obj).__name__}")
    return obj


def prepare(state: Mapping) -> dict[str, torch.Tensor]:
    """Keys without ``module.`` prefixes; float tensors as float32; every tensor contiguous
    and owning its memory (safetensors refuses shared storage)."""
    result: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = str(key)
        while name.startswith("module."):
            name = name[len("module."):]
        if not isinstance(value, torch.Tensor):
            fail(f"entry '{key}' is a {type(value).__name__}, not a tensor")
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        if name in result:
            fail(f"two entries become '{name}' once 'module.' prefixes are stripped")
        result[name] = tensor.contiguous().clone()
    if not result:
        fail("the state dict is empty")
    return result


def check_resnet(tensors: dict[str, torch.Tensor], arch: str) -> None:
    """Fails unless ``tensors`` has exactly the keys and shapes of torchvision's ``arch``, or
    of fastai's ``vision_learner`` on that body (``0.*`` body, ``1.*`` head); a missing
    ``num_batches_tracked`` is fine."""
    fastai = "1.8.weight" in tensors
    head_key = "1.8.weight" if fastai else "fc.weight"
    layout = "fastai" if fastai else "torchvision"
    if head_key not in tensors or tensors[head_key].dim() != 2:
        fail(f"no 2-D fc.weight (torchvision) or 1.8.weight (fastai): not a {arch} state dict")
    classes = tensors[head_key].shape[0]
    model = resnet.fastai_model(arch, classes) if fastai else resnet.build(arch, classes)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in tensors and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        fail(f"not a {layout} {arch} state dict: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
             f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''} (use --no-check to skip)")
    for key, shape in expected.items():
        if key in tensors and tuple(tensors[key].shape) != shape:
            fail(f"'{key}' has shape {tuple(tensors[key].shape)}, {layout} {arch} expects {shape}")


def read_labels(path: Path) -> list[str]:
    """One label per line (UTF-8); trailing empty lines dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read labels {path}: {error}")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        fail(f"labels file {path} is empty")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", type=Path, help=".pth state dict (omit with --deterministic)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .safetensors file to write")
    parser.add_argument("--arch", help="architecture name stored in metadata (e.g. resnet34)")
    parser.add_argument("--labels", type=Path, help="text file, one class label per line")
    parser.add_argument("--preset", choices=PRESETS, help="preprocessing the model was trained with")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="extra metadata (repeatable)")
    parser.add_argument("--deterministic", choices=sorted(resnet.ARCHS), metavar="ARCH",
                        help="write DeterministicWeights for ARCH instead of converting a file")
    parser.add_argument("--num-classes", type=int, default=1000, help="classes for --deterministic (default 1000)")
    parser.add_argument("--no-check", action="store_true", help="skip the ResNet key/shape check for --arch")
    args = parser.parse_args()

    if args.deterministic:
        if args.input is not None:
            parser.error("give either an input file or --deterministic, not both")
        if args.num_classes < 1:
            parser.error("--num-classes must be >= 1")
        if args.arch and args.arch != args.deterministic:
            parser.error("--arch differs from --deterministic")
        model = resnet.build(args.deterministic, args.num_classes)
        tensors = prepare(resnet.deterministic_state_dict(model))
        arch = args.deterministic
    else:
        if args.input is None:
            parser.error("an input .pth file (or --deterministic ARCH) is required")
        if not args.input.is_file():
            fail(f"no such file: {args.input}")
        try:
            loaded = torch.load(args.input, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many kinds; report one line
            fail(f"cannot load {args.input} with weights_only=True: {str(error).splitlines()[0]}")
        tensors = prepare(unwrap_state_dict(loaded))
        arch = args.arch
        if arch in resnet.ARCHS and not args.no_check:
            check_resnet(tensors, arch)

    metadata = {"format": "pt"}
    if arch:
        metadata["arch"] = arch
    if args.labels:
        labels = read_labels(args.labels)
        fc = tensors.get("fc.weight")
        if fc is not None and fc.dim() == 2 and fc.shape[0] != len(labels):
            fail(f"{args.labels} has {len(labels)} labels but fc.weight has {fc.shape[0]} classes")
        metadata["labels"] = json.dumps(labels, ensure_ascii=False)
    if args.preset:
        metadata["preset"] = args.preset
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--meta expects KEY=VALUE, got {item!r}")
        metadata[key] = value

    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_name(f".{args.output.name}.tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # safetensors creates the file 0600
    temporary.replace(args.output)  # atomic: readers never see a partial file
    floats = sum(t.numel() for t in tensors.values() if t.is_floating_point())
    print(f"wrote {args.output}: {len(tensors)} tensors, {floats} float32 values, metadata keys {sorted(metadata)}")


if __name__ == "__main__":
    main()
