#!/usr/bin/env python3
"""Writes Tests/Fixtures/safetensors/python_mixed.safetensors with safetensors.torch.save_file.

The file holds one tensor of each dtype Elucidate reads, with edge values (subnormals,
infinities, -0, extremes), plus an I64 tensor that readers must skip for floatTensors():

    f32                  F32   (2, 3)
    f16                  F16   (2, 4)
    bf16                 BF16  (2, 2)
    f64                  F64   (3,)
    num_batches_tracked  I64   ()      value 42

and __metadata__ {"arch": "tiny", "format": "pt"}. It prints each float tensor as float32
bit patterns (C order), the constants hard-coded in Tests/IOTests/SafetensorsTests.swift.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "safetensors" / "python_mixed.safetensors"


def tensors() -> dict[str, torch.Tensor]:
    return {
        "f32": torch.tensor([[0.0, -1.5, 3.25], [1e-30, -7.0e20, math.pi]], dtype=torch.float32),
        "f16": torch.tensor([[1.0, -2.5, 65504.0, 2.0**-24], [1.0 / 3.0, -0.0, math.inf, 2.0**-14]],
                            dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -math.pi], [3.3895313892515355e38, 2.0**-133]], dtype=torch.bfloat16),
        "f64": torch.tensor([0.1, -2.5, 1e-50], dtype=torch.float64),
        "num_batches_tracked": torch.tensor(42, dtype=torch.int64),
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    data = tensors()
    save_file(data, str(OUT), metadata={"arch": "tiny", "format": "pt"})
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")
    for name, tensor in data.items():
        if not tensor.is_floating_point():
            print(f"{name}: {tensor.dtype} {list(tensor.shape)} = {tensor.tolist()}")
            continue
        bits = tensor.float().numpy().ravel().view(np.uint32)
        print(f"{name}: {tensor.dtype} {list(tensor.shape)} float32 bits "
              f"[{', '.join(f'0x{b:08X}' for b in bits)}]")


if __name__ == "__main__":
    main()
