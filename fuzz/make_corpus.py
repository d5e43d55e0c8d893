#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora under fuzz/corpus/<parser>/ (small, deterministic).

    corpus/safetensors/  valid safetensors files: F32 tensors, a scalar, an empty tensor,
                         metadata, other dtypes (F16, I64, U8) beside F32, a padded header
    corpus/npy/          .npy files as numpy.save writes them: float32 and int32 of several
                         shapes (scalar, empty, 1-D, 4-D), format versions 1.0, 2.0 and 3.0,
                         and a few the parser must refuse (float64, big-endian, Fortran order)
    corpus/jpeg/         tiny JPEGs from Pillow: baseline colour at 4:4:4 and 4:2:0, greyscale,
                         progressive, restart markers, EXIF blocks (II, MM) and XMP with an
                         orientation; plus small fixtures from
                         Tests/Fixtures/images when present
    corpus/png/          tiny PNGs from Pillow: grey 1/2/4/8/16 bits, RGB, RGBA, palette with
                         transparency, grey+alpha, an interlaced one written by hand, extra
                         chunks, an eXIf chunk; plus small fixtures from Tests/Fixtures/images when present
    corpus/pth/          (only with torch: python3 fuzz/make_corpus.py --pth) real torch.save
                         archives of tiny state dicts (float32/float16/int64 tensors, a view
                         sharing a storage at an offset, a non-contiguous stride, a wrapper
                         dict, an empty dict, a legacy-format file) and their bare data.pkl
                         pickles (the fuzzer's second path), at protocols 2 and 4, plus a
                         pickle calling os.system that must be refused
    corpus/preprocess/   small JPEGs and PNGs for decode -> resize -> normalise: the image
                         seeds above plus extreme aspect ratios (1x300, 300x1, 1x1), a
                         grey+alpha and a CMYK image

Needs numpy and Pillow (and torch for --pth). Re-running rewrites the same bytes (no
randomness, no timestamps: torch's random serialization_id is replaced by a fixed one).
Usage: python3 fuzz/make_corpus.py [--pth]
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
FIXTURES = HERE.parent / "Tests" / "Fixtures" / "images"
MAX_FIXTURE_BYTES = 1_024


def write(parser: str, name: str, data: bytes) -> None:
    path = CORPUS / parser / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def pattern(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 image with gradients and edges."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [((x * (37 + 11 * c) + y * (53 + 7 * c) + seed * 29 + c * 71) ^ (x * y)) % 256 for c in range(channels)]
    return np.stack(planes, axis=-1).astype(np.uint8)


# MARK: safetensors

def safetensors_file(tensors: list[tuple[str, str, list[int], bytes]], metadata: dict | None = None,
                     align: int = 8) -> bytes:
    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % align)  # padding with spaces, as the Rust writer does
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def make_safetensors() -> None:
    f32 = lambda a: np.asarray(a, dtype="<f4").tobytes()  # noqa: E731
    w = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) / 10
    write("safetensors", "small.safetensors", safetensors_file([
        ("conv1.weight", "F32", [2, 3, 3, 3], f32(w)),
        ("fc.bias", "F32", [2], f32([0.5, -0.25])),
    ], metadata={"format": "pt", "arch": "resnet18"}))
    write("safetensors", "scalar_and_empty.safetensors", safetensors_file([
        ("scalar", "F32", [], f32([3.0])),
        ("empty", "F32", [0, 4], b""),
        ("vector", "F32", [4], f32([1, 2, 3, 4])),
    ]))
    write("safetensors", "mixed_dtypes.safetensors", safetensors_file([
        ("bn1.num_batches_tracked", "I64", [], np.asarray([7], dtype="<i8").tobytes()),
        ("half", "F16", [2, 2], np.asarray([[1, 2], [3, 4]], dtype="<f2").tobytes()),
        ("bytes", "U8", [3], bytes([1, 2, 3])),
        ("bn1.running_var", "F32", [2], f32([1.0, 2.0])),
    ], metadata={"labels": "cat\ndog"}))
    write("safetensors", "no_tensors.safetensors", safetensors_file([], metadata={"note": "empty"}))


# MARK: npy

def npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, array, allow_pickle=False)
    else:
        np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    return buffer.getvalue()


def make_npy() -> None:
    a = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 12) / 4
    write("npy", "f4_2x3x4.npy", npy_bytes(a))
    write("npy", "f4_scalar.npy", npy_bytes(np.float32(1.5)))
    write("npy", "f4_empty_0x3.npy", npy_bytes(np.zeros((0, 3), dtype=np.float32)))
    write("npy", "f4_nchw_1x3x4x4.npy", npy_bytes(np.linspace(-2, 2, 48, dtype=np.float32).reshape(1, 3, 4, 4)))
    write("npy", "i4_labels.npy", npy_bytes(np.array([3, 1, 4, 1, 5, 9], dtype=np.int32)))
    write("npy", "i4_2x2.npy", npy_bytes(np.array([[-1, 2], [2**31 - 1, -(2**31)]], dtype=np.int32)))
    write("npy", "f4_v2.npy", npy_bytes(np.arange(5, dtype=np.float32), version=(2, 0)))
    write("npy", "f4_v3.npy", npy_bytes(np.arange(5, dtype=np.float32), version=(3, 0)))
    # Refused by the parser, but close to accepted files: good mutation material.
    write("npy", "f8_refused.npy", npy_bytes(np.arange(3, dtype=np.float64)))
    write("npy", "f4_bigendian_refused.npy", npy_bytes(np.arange(3, dtype=">f4")))
    write("npy", "f4_fortran_refused.npy", npy_bytes(np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))))


# MARK: JPEG

def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def make_jpeg() -> None:
    rgb = Image.fromarray(pattern(16, 16, 3), "RGB")
    write("jpeg", "rgb_444.jpg", jpeg(rgb, quality=75, subsampling=0))
    write("jpeg", "rgb_420.jpg", jpeg(rgb, quality=50, subsampling=2))
    write("jpeg", "gray.jpg", jpeg(Image.fromarray(pattern(8, 8, 1)[..., 0], "L"), quality=80))
    write("jpeg", "progressive.jpg", jpeg(Image.fromarray(pattern(16, 24, 3, 1), "RGB"), quality=70,
                                          progressive=True))
    write("jpeg", "odd_size_3x5.jpg", jpeg(Image.fromarray(pattern(5, 3, 3, 2), "RGB"), quality=90))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW
    write("jpeg", "exif_orientation.jpg", jpeg(Image.fromarray(pattern(8, 16, 3, 3), "RGB"), quality=60,
                                               exif=exif.tobytes()))
    # The orientation reader's other paths: a big-endian (MM) EXIF block behind another tag,
    # and an orientation only in XMP (ExifOrientation, reached through decode(_:exif:)).
    big_endian = (b"Exif\x00\x00MM\x00\x2a" + struct.pack(">IH", 8, 2) + struct.pack(">HHI4s", 0x010F, 2, 4, b"Acm\x00")
                  + struct.pack(">HHIH2s", 0x0112, 3, 1, 8, b"\x00\x00") + struct.pack(">I", 0))
    write("jpeg", "exif_big_endian.jpg", jpeg(Image.fromarray(pattern(4, 6, 3, 9), "RGB"), quality=60, exif=big_endian))
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="5"/></x:xmpmeta>'
    write("jpeg", "xmp_orientation.jpg", jpeg(Image.fromarray(pattern(4, 6, 3, 10), "RGB"), quality=60, xmp=xmp))
    # Restart markers every MCU row: Pillow passes "restart_marker_rows" only in newer versions.
    try:
        write("jpeg", "restart_markers.jpg", jpeg(rgb, quality=60, restart_marker_rows=1))
    except (TypeError, ValueError, OSError):
        pass
    write("jpeg", "cmyk.jpg", jpeg(Image.fromarray(pattern(8, 8, 4, 4), "CMYK"), quality=80))
    copy_fixtures("jpeg", [".jpg", ".jpeg"])


# MARK: PNG

def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def interlaced_rgb_png(pixels: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG (Pillow does not write interlaced files)."""
    height, width, _ = pixels.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.tobytes()  # filter type 0 (None)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def make_png() -> None:
    write("png", "rgb_8x8.png", png(Image.fromarray(pattern(8, 8, 3), "RGB")))
    write("png", "rgba_6x5.png", png(Image.fromarray(pattern(5, 6, 4, 1), "RGBA")))
    write("png", "gray_7x3.png", png(Image.fromarray(pattern(3, 7, 1, 2)[..., 0], "L")))
    write("png", "gray_alpha_4x4.png", png(Image.fromarray(pattern(4, 4, 2, 3), "LA")))
    gray16 = (pattern(4, 5, 1, 4)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    write("png", "gray16_5x4.png", png(Image.fromarray(gray16)))  # mode I;16
    for bits in (1, 2, 4):
        image = Image.fromarray(pattern(6, 9, 1, bits)[..., 0] >> (8 - bits), "L")
        write("png", f"gray{bits}_9x6.png", png(image, bits=bits))
    palette = Image.fromarray(pattern(6, 6, 1, 5)[..., 0] % 16, "P")
    palette.putpalette([v for i in range(16) for v in (i * 16, 255 - i * 16, (i * 97) % 256)])
    write("png", "palette_trns_6x6.png", png(palette, transparency=bytes([0, 128] + [255] * 14)))
    write("png", "rgb_trns_4x4.png", png(Image.fromarray(pattern(4, 4, 3, 6), "RGB"), transparency=(0, 0, 0)))
    write("png", "interlaced_rgb_9x9.png", interlaced_rgb_png(pattern(9, 9, 3, 7)))
    # Ancillary chunks (gAMA, tEXt) before the image data.
    base = png(Image.fromarray(pattern(3, 3, 3, 8), "RGB"))
    extra = chunk(b"gAMA", struct.pack(">I", 45455)) + chunk(b"tEXt", b"Comment\x00fuzz seed")
    write("png", "with_chunks_3x3.png", base[:33] + extra + base[33:])
    # An eXIf chunk (EXIF orientation 6), read by ExifOrientation.
    exif = b"II\x2a\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIH2s", 0x0112, 3, 1, 6, b"\x00\x00") + struct.pack("<I", 0)
    write("png", "exif_orientation_3x2.png", base[:33] + chunk(b"eXIf", exif) + base[33:])
    copy_fixtures("png", [".png"])


def make_preprocess() -> None:
    """Images for the preprocessing target: shapes that stress resize and crop."""
    for name in ("rgb_8x8.png", "gray_alpha_4x4.png", "palette_trns_6x6.png", "gray16_5x4.png", "exif_orientation_3x2.png"):
        shutil.copyfile(CORPUS / "png" / name, CORPUS / "preprocess" / name)
    for name in ("rgb_420.jpg", "gray.jpg", "cmyk.jpg", "progressive.jpg", "exif_orientation.jpg"):
        shutil.copyfile(CORPUS / "jpeg" / name, CORPUS / "preprocess" / name)
    write("preprocess", "thin_1x300.png", png(Image.fromarray(pattern(300, 1, 3, 5))))
    write("preprocess", "wide_300x1.png", png(Image.fromarray(pattern(1, 300, 3, 6))))
    write("preprocess", "dot_1x1.png", png(Image.fromarray(pattern(1, 1, 3, 7))))
    write("preprocess", "thin_2x90.jpg", jpeg(Image.fromarray(pattern(90, 2, 3, 8)), quality=80))
    write("preprocess", "rgb_33x17.jpg", jpeg(Image.fromarray(pattern(17, 33, 3, 9)), quality=80))


def torch_zip(obj, protocol: int = 2) -> bytes:
    """torch.save's archive of `obj`, rewritten with a fixed serialization_id."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer, pickle_protocol=protocol)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("serialization_id"):
                data = b"0" * len(data)
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            target.writestr(entry, data)
    return out.getvalue()


def make_pth() -> None:
    import torch

    conv = torch.arange(16, dtype=torch.float32).reshape(2, 2, 2, 2) / 7
    base = torch.arange(24, dtype=torch.float32)
    dicts = {
        "conv_bn": {"conv.weight": conv, "bn.running_mean": torch.zeros(2), "bn.num_batches_tracked": torch.tensor(3)},
        "half": {"w": torch.arange(6, dtype=torch.float16).reshape(2, 3)},
        "shared_view": {"a": base[4:12], "b": base.view(4, 6)[1], "c": base},
        "strided": {"t": base.view(4, 6).t()},
        "empty": {},
        "scalar": {"s": torch.tensor(1.5)},
    }
    for name, tensors in dicts.items():
        for protocol in (2, 4):
            archive = torch_zip(tensors, protocol)
            with zipfile.ZipFile(io.BytesIO(archive)) as source:
                pickle = next(source.read(n) for n in source.namelist() if n.endswith("data.pkl"))
            if protocol == 2 or name == "conv_bn":
                write("pth", f"{name}_p{protocol}.pth", archive)
            write("pth", f"{name}_p{protocol}.pkl", pickle)
    write("pth", "wrapped_state_dict.pth", torch_zip({"state_dict": dicts["conv_bn"], "epoch": 3}))
    buffer = io.BytesIO()
    torch.save(dicts["conv_bn"], buffer, _use_new_zipfile_serialization=False)
    write("pth", "legacy_conv_bn.pth", buffer.getvalue())


def copy_fixtures(parser: str, suffixes: list[str]) -> None:
    """Small fixtures of the image tests (Tests/Fixtures/images), when they are present."""
    if not FIXTURES.is_dir():
        return
    for path in sorted(FIXTURES.iterdir()):
        if path.suffix.lower() in suffixes and path.is_file() and path.stat().st_size <= MAX_FIXTURE_BYTES:
            if path.name.count(".") > 1:  # derived references such as photo.torchvision.png
                continue
            shutil.copyfile(path, CORPUS / parser / f"fixture_{path.name}")


def main() -> None:
    parsers = ["safetensors", "npy", "jpeg", "png", "preprocess"]
    for parser in parsers:
        target = CORPUS / parser
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
    make_safetensors()
    make_npy()
    make_jpeg()
    make_png()
    make_preprocess()
    if "--pth" in sys.argv[1:]:
        make_pth()  # adds to corpus/pth (its hand-made seeds stay)
        parsers.append("pth")
    for parser in parsers:
        files = sorted((CORPUS / parser).iterdir())
        print(f"corpus/{parser}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
