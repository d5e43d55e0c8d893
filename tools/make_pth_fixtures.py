#!/usr/bin/env python3
"""Writes the PyTorch checkpoint fixtures under Tests/Fixtures/pth/ and the seeds of the
fuzz-pth fuzzer under fuzz/corpus/pth/ (all small, deterministic).

    tiny.pth                 torch.save of a tiny ResNet-like state dict (an OrderedDict):
                             float32, float16, bfloat16, float64, int64 and int32 tensors, a
                             transposed (non-contiguous) tensor, views sharing one storage
                             (with an offset, and with a step), a scalar, an empty tensor
                             and an nn.Parameter
    tiny.safetensors         the same tensors, made contiguous, with safetensors: the parity
                             reference (float tensors must read back identical)
    under_model.pth          {'model': state dict, 'opt': ...} as fastai's learn.save writes
                             it (with_opt=True): the optimizer's hypers are a
                             fastcore.foundation.L of dicts holding numpy float64 scalars
    under_state_dict.pth     {'epoch', 'arch', 'state_dict', 'optimizer', 'best_acc1'} as
                             common training scripts write it (SGD optimizer state)
    dataparallel.pth         every key prefixed with 'module.' (nn.DataParallel)
    pickled_module.pth       torch.save(model) of an nn.Sequential: refused (whole model)
    learner_export.pkl       a stand-in for fastai's learn.export(): torch.save of an object
                             of class fastai.learner.Learner: refused, with advice
    os_system.pth            a torch.save-shaped zip whose data.pkl calls os.system (bytes
                             written by hand; never loaded): refused
    legacy.pth               torch.save(..., _use_new_zipfile_serialization=False): refused
    torchscript.pt           torch.jit.save of a scripted module: refused
    pickles/basic_pN.pkl     pickle.dumps of one nested value (ints, floats, strings, bytes,
                             None, booleans, tuples, lists, dicts, an OrderedDict, a shared
                             list) with protocols 0 to 5, for the unpickler's own tests

fastai and fastcore are not needed: stand-in classes are registered under their module
names (pickle records only the names), and produce the same opcodes as the real ones
(checked against fastcore 2.2: NEWOBJ of fastcore.foundation.L, then BUILD with
{'items': [...]}).

With --resnet18 PATH it only writes the deterministic ResNet18 (2 classes) of
tools/resnet.py to PATH with torch.save, for the CLI parity test.

Needs torch, numpy and safetensors. Usage: python3 tools/make_pth_fixtures.py [--resnet18 PATH]
"""

from __future__ import annotations

import argparse
import collections
import io
import pickle
import shutil
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "pth"
CORPUS = ROOT / "fuzz" / "corpus" / "pth"


def values(count: int, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Deterministic float64 values in [-scale, scale) without a random generator."""
    i = torch.arange(count, dtype=torch.float64)
    return scale * torch.sin(i * 1.7 + seed * 0.31 + 0.2)


def tiny_state_dict() -> "collections.OrderedDict[str, torch.Tensor]":
    sd: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()
    sd["conv1.weight"] = values(4 * 3 * 3 * 3, 0.5).float().reshape(4, 3, 3, 3)
    sd["bn1.weight"] = (1 + values(4, 0.1, 1)).float()
    sd["bn1.bias"] = values(4, 0.1, 2).float()
    sd["bn1.running_mean"] = values(4, 0.1, 3).float()
    sd["bn1.running_var"] = (1 + values(4, 0.5, 4)).abs().float()
    sd["bn1.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    # float16 with edge values: subnormal, -0, the largest half, infinity.
    half = values(4 * 4 * 3 * 3, 2.0, 5).half().reshape(4, 4, 3, 3)
    half.view(-1)[:4] = torch.tensor([2.0**-24, -0.0, 65504.0, float("inf")], dtype=torch.float16)
    sd["layer1.0.conv1.weight"] = half
    sd["layer1.0.bn1.weight"] = (1 + values(4, 0.3, 6)).bfloat16()
    sd["layer1.0.bn1.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    # A transposed tensor: shape (5, 4), strides (1, 5).
    sd["fc.weight"] = values(20, 0.4, 7).float().reshape(4, 5).t()
    # Views of one storage: with an offset, as a matrix, with a step.
    shared = values(24, 1.0, 8).float()
    sd["fc.bias"] = shared[10:15]
    sd["shared.matrix"] = shared[0:10].view(2, 5)
    sd["shared.every_other"] = shared[1:24:2]
    sd["extra.double"] = torch.tensor([0.1, -2.5, 1e-50, 3.4e38 * 2], dtype=torch.float64)
    sd["extra.int32"] = torch.arange(3, dtype=torch.int32)
    sd["extra.scalar"] = torch.tensor(3.25)
    sd["extra.empty"] = torch.zeros(0, 3)
    sd["extra.parameter"] = torch.nn.Parameter(values(6, 1.0, 9).float().reshape(2, 3))
    return sd


def contiguous_copy(sd: dict) -> dict:
    return {key: value.detach().contiguous().clone() for key, value in sd.items()}


# Stand-ins for fastai/fastcore classes: pickle stores only module and class names.
def register_module(name: str, **members) -> None:
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        module_name = ".".join(parts[:depth])
        if module_name not in sys.modules:
            sys.modules[module_name] = types.ModuleType(module_name)
    module = sys.modules[name]
    for key, value in members.items():
        value.__module__ = name
        value.__qualname__ = key
        setattr(module, key, value)


class L:  # fastcore.foundation.L: pickles as NEWOBJ + BUILD({'items': [...]})
    def __init__(self, items):
        self.items = list(items)


class Learner:  # fastai.learner.Learner stand-in
    def __init__(self, model):
        self.model = model
        self.lr = 1e-3


register_module("fastcore.foundation", L=L)
register_module("fastai.learner", Learner=Learner)


def save(obj, path: Path, **options) -> None:
    torch.save(obj, path, **options)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


def fastai_checkpoint(sd: dict) -> dict:
    params = [v for v in sd.values() if v.is_floating_point()]
    state = [{"grad_avg": torch.zeros_like(p), "sqr_avg": torch.zeros_like(p), "step": 3} for p in params[:2]]
    hypers = L({"lr": np.float64(1e-3), "mom": 0.9, "sqr_mom": 0.99, "eps": 1e-5, "wd": 0.01} for _ in range(2))
    return {"model": sd, "opt": {"state": state, "hypers": hypers}}


def training_script_checkpoint(sd: dict) -> dict:
    weights = [torch.nn.Parameter(v.detach().float().clone()) for k, v in sd.items() if k.startswith("bn1.") and v.is_floating_point()]
    optimizer = torch.optim.SGD(weights, lr=0.1, momentum=0.9)
    for w in weights:
        w.grad = torch.ones_like(w)
    optimizer.step()
    return {"epoch": 3, "arch": "resnet18", "state_dict": sd, "optimizer": optimizer.state_dict(),
            "best_acc1": torch.tensor(0.5)}


def os_system_pickle() -> bytes:
    """GLOBAL os.system, REDUCE with a command: what a malicious checkpoint does."""
    return b"\x80\x02cos\nsystem\nq\x00X\x1c\x00\x00\x00echo elucidate-was-exploitedq\x01\x85q\x02Rq\x03."


def torch_zip(entries: dict[str, bytes], name: str = "archive") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, data in entries.items():
            info = zipfile.ZipInfo(f"{name}/{key}", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, data)
    return buffer.getvalue()


def basic_value():
    shared = [1, 2]
    return {
        "int": 1, "neg": -300, "big": 2**40, "negbig": -(2**62), "float": 0.5, "str": "naïve ✓\n",
        "none": None, "t": True, "f": False, "tuple": (1, "a", (2.5, ())), "list": [1, [2, [3]]],
        "bytes": b"\x00\xff", "od": collections.OrderedDict([("b", 2), ("a", 1)]),
        "s1": shared, "s2": shared, 7: "int key",
    }


class Sequential(torch.nn.Sequential):
    pass


def write_fixtures() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "pickles").mkdir(parents=True)
    sd = tiny_state_dict()
    save(sd, OUT / "tiny.pth")
    save_file(contiguous_copy(sd), str(OUT / "tiny.safetensors"))
    print(f"Tests/Fixtures/pth/tiny.safetensors: {(OUT / 'tiny.safetensors').stat().st_size} bytes")
    save(fastai_checkpoint(sd), OUT / "under_model.pth")
    save(training_script_checkpoint(sd), OUT / "under_state_dict.pth")
    save(collections.OrderedDict((f"module.{k}", v) for k, v in sd.items()), OUT / "dataparallel.pth")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2))
    save(model, OUT / "pickled_module.pth")
    save(Learner(model), OUT / "learner_export.pkl")
    path = OUT / "os_system.pth"
    path.write_bytes(torch_zip({"data.pkl": os_system_pickle(), "byteorder": b"little", "version": b"3\n"}, "os_system"))
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")
    save({"a": torch.ones(2)}, OUT / "legacy.pth", _use_new_zipfile_serialization=False)
    scripted = torch.jit.script(torch.nn.Linear(2, 1))
    torch.jit.save(scripted, str(OUT / "torchscript.pt"))
    print(f"Tests/Fixtures/pth/torchscript.pt: {(OUT / 'torchscript.pt').stat().st_size} bytes")
    for protocol in range(6):
        (OUT / "pickles" / f"basic_p{protocol}.pkl").write_bytes(pickle.dumps(basic_value(), protocol=protocol))
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"Tests/Fixtures/pth: {total} bytes in all")


def data_pkl(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with zipfile.ZipFile(buffer) as archive:
        return archive.read("archive/data.pkl")


def write_corpus() -> None:
    """Whole small checkpoints, and bare data.pkl pickles whose storages (keys 0-7, at most
    4 KiB each) the fuzzer supplies itself (see fuzz/Sources/FuzzPth)."""
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir(parents=True)
    small = collections.OrderedDict()
    small["conv.weight"] = values(8, 1.0).float().reshape(2, 1, 2, 2)
    small["bn.num_batches_tracked"] = torch.tensor(1)
    small["half"] = values(4, 1.0, 1).half()
    small["t"] = values(6, 1.0, 2).float().reshape(2, 3).t()
    (CORPUS / "small.pth").write_bytes(_saved(small))
    (CORPUS / "under_model.pth").write_bytes(_saved({"model": {"w": torch.ones(2)}, "epoch": 1}))
    (CORPUS / "legacy.pth").write_bytes(_saved({"a": torch.ones(1)}, _use_new_zipfile_serialization=False))
    (CORPUS / "small.pkl").write_bytes(data_pkl(small))
    shared = values(12, 1.0, 3).float()
    (CORPUS / "views.pkl").write_bytes(data_pkl(collections.OrderedDict(
        [("a", shared[2:6]), ("b", shared[::3]), ("c", torch.nn.Parameter(shared[0:4].view(2, 2))),
         ("d", torch.tensor(1.5, dtype=torch.float64)), ("e", torch.ones(2, dtype=torch.bfloat16))])))
    (CORPUS / "wrapped.pkl").write_bytes(data_pkl({"state_dict": {"module.x": torch.zeros(3)}, "epoch": 2,
                                                   "hypers": L([{"lr": np.float64(0.1)}])}))
    (CORPUS / "basic_p2.pkl").write_bytes(pickle.dumps(basic_value(), protocol=2))
    (CORPUS / "basic_p4.pkl").write_bytes(pickle.dumps(basic_value(), protocol=4))
    (CORPUS / "os_system.pkl").write_bytes(os_system_pickle())
    total = sum(f.stat().st_size for f in CORPUS.iterdir())
    print(f"fuzz/corpus/pth: {len(list(CORPUS.iterdir()))} files, {total} bytes")


def _saved(obj, **options) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **options)
    return buffer.getvalue()


def write_resnet18(path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from resnet import build, deterministic_state_dict  # noqa: PLC0415

    torch.save(deterministic_state_dict(build("resnet18", 2)), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resnet18", type=Path, help="only write the deterministic ResNet18 (2 classes) here")
    args = parser.parse_args()
    if args.resnet18:
        write_resnet18(args.resnet18)
        return
    write_fixtures()
    write_corpus()


if __name__ == "__main__":
    main()
