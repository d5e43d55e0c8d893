#!/usr/bin/env python3
"""Creates the image-decoding and preprocessing fixtures under Tests/Fixtures/images/.

Deterministic: every image is synthesised from formulas (plus a fixed-seed noise field),
so re-running the script with the pinned Pillow/numpy (tools/requirements.txt) rewrites
the same bytes.

For every decodable image it records Pillow's reference (what `Image.open(p).convert("RGB")`
gives) in manifest.json: size, an FNV-1a 64 hash of the RGB8 bytes, and the pixels
themselves as `<name>.rgb.npy` (int32, shape (H, W, 3)) for small images or as a lossless
`<name>.rgb.png` for the larger JPEGs (keeps the fixtures small; larger PNGs have only the
hash). For the images listed in
PRESET_IMAGES it also records the torchvision and fastai preset outputs, computed the way
torchvision.transforms does with Pillow (torchvision itself is not needed):

    Resize(256)     shorter side -> 256, longer -> int(256 * long / short), Image.BILINEAR
    CenterCrop(224) top = int(round((h - 224) / 2.0)), left likewise (Python rounding)
    ToTensor()      float32 pixels / 255, CHW
    Normalize       (x - mean) / std in float32, mean/std as float32 tensors

The 224x224 crops before ToTensor are stored losslessly as `<name>.<preset>.png`; the
full float32 tensor (1, 3, 224, 224) is stored for photo.jpg/torchvision as
`photo.torchvision.npy`. resize/*.png hold plain Pillow bilinear resizes of photo's
decoded pixels to awkward sizes.

Usage: python3 tools/make_image_fixtures.py
"""

import io
import json
import os
import re
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "images")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
PRESETS = {"torchvision": (256, 224), "fastai": (224, 224)}
NPY_REFERENCE_MAX_PIXELS = 100 * 80


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# MARK: synthetic content

def photo_like(width: int, height: int, seed: int, noise: float = 6.0) -> Image.Image:
    """Gradients, shapes, fine stripes and mild noise: enough structure for JPEG and resampling."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    rgb = np.stack([r, g, b], axis=-1)
    # High-frequency stripes in one corner exercise the antialiasing filter.
    stripes = ((x.astype(int) // 2 + y.astype(int) // 3) % 2) * 80.0
    corner = (x < width / 3) & (y > height * 2 / 3)
    rgb[corner] = rgb[corner] * 0.5 + stripes[corner][:, None]
    noise = np.random.default_rng(seed).normal(0.0, noise, size=rgb.shape)
    rgb = np.clip(np.rint(rgb + noise), 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.55, height * 0.15, width * 0.9, height * 0.7], fill=(230, 40, 30), outline=(10, 10, 10))
    draw.rectangle([width * 0.1, height * 0.1, width * 0.35, height * 0.45], fill=(20, 60, 200))
    draw.line([0, height - 1, width - 1, 0], fill=(255, 255, 255), width=3)
    draw.polygon([(width * 0.4, height * 0.9), (width * 0.6, height * 0.5), (width * 0.8, height * 0.95)],
                 fill=(250, 220, 40))
    return image


def pattern(width: int, height: int, channels: int, maximum: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise, values 0...maximum, shape (H, W, C)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = []
    for c in range(channels):
        base = (x * (c + 1) * 13 + y * (channels - c) * 7) / (width * 13 + height * 7 * channels)
        planes.append(base)
    data = np.stack(planes, axis=-1) * 0.8 + np.random.default_rng(seed).random((height, width, channels)) * 0.2
    return np.clip(np.rint(data * maximum), 0, maximum).astype(np.uint16 if maximum > 255 else np.uint8)


# MARK: a minimal PNG writer for layouts Pillow cannot save (16-bit RGB/RGBA/LA, 2/4-bit gray, Adam7)

def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def pack_rows(samples: np.ndarray, bit_depth: int) -> list:
    """samples: (H, W, C) integer array -> list of packed row bytes (without filter bytes)."""
    rows = []
    for row in samples:
        flat = row.reshape(-1)
        if bit_depth == 16:
            rows.append(flat.astype(">u2").tobytes())
        elif bit_depth == 8:
            rows.append(flat.astype(np.uint8).tobytes())
        else:
            per_byte = 8 // bit_depth
            padded = np.zeros(((len(flat) + per_byte - 1) // per_byte) * per_byte, dtype=np.uint8)
            padded[: len(flat)] = flat
            packed = np.zeros(len(padded) // per_byte, dtype=np.uint8)
            for i in range(per_byte):
                packed |= (padded[i::per_byte] << (8 - bit_depth * (i + 1))).astype(np.uint8)
            rows.append(packed.tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(samples: np.ndarray, bit_depth: int, color_type: int, interlace: bool = False,
              extra_chunks: bytes = b"") -> bytes:
    height, width = samples.shape[:2]
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            raw += b"".join(b"\x00" + r for r in pack_rows(sub, bit_depth))
    else:
        raw = b"".join(b"\x00" + r for r in pack_rows(samples, bit_depth))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra_chunks
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


# MARK: torchvision-equivalent preprocessing with Pillow and numpy

def resized_size(width: int, height: int, size: int):
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def preset_crop(image: Image.Image, resize: int, crop: int) -> Image.Image:
    w, h = resized_size(image.width, image.height, resize)
    if (w, h) != image.size:
        image = image.resize((w, h), Image.BILINEAR)
    top = int(round((h - crop) / 2.0))
    left = int(round((w - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def to_normalized_tensor(image: Image.Image) -> np.ndarray:
    x = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    x = (x - MEAN[:, None, None]) / STD[:, None, None]
    return x[None].astype(np.float32)


def cross_check_with_torch(image: Image.Image, expected: np.ndarray) -> None:
    """When torch is installed, confirm numpy's float32 arithmetic equals torch's ToTensor/Normalize."""
    try:
        import torch
    except ImportError:
        return
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    t = t.to(torch.float32).div(255)
    mean = torch.as_tensor([0.485, 0.456, 0.406], dtype=torch.float32)[:, None, None]
    std = torch.as_tensor([0.229, 0.224, 0.225], dtype=torch.float32)[:, None, None]
    t = t.sub(mean).div(std)
    assert np.array_equal(t.numpy()[None], expected), "numpy and torch preprocessing differ"


# MARK: the fixture set

def main() -> None:
    os.makedirs(os.path.join(ROOT, "resize"), exist_ok=True)
    files = {}  # name -> bytes
    notes = {}

    photo = photo_like(320, 240, seed=1)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)  # baseline, 4:2:0
    files["photo.jpg"] = buf.getvalue()

    buf = io.BytesIO()
    photo_like(96, 72, seed=2).save(buf, "JPEG", quality=85, subsampling=0, progressive=True)
    files["progressive444.jpg"] = buf.getvalue()

    buf = io.BytesIO()
    photo_like(97, 61, seed=3).convert("L").save(buf, "JPEG", quality=90)
    files["gray.jpg"] = buf.getvalue()

    def pillow_png(image: Image.Image, **options) -> bytes:
        out = io.BytesIO()
        image.save(out, "PNG", **options)
        return out.getvalue()

    files["rgb.png"] = pillow_png(photo_like(300, 200, seed=4))
    files["large.png"] = pillow_png(photo_like(512, 384, seed=5, noise=2.0))
    files["small.png"] = pillow_png(photo_like(97, 61, seed=6))
    files["tall.png"] = pillow_png(photo_like(61, 97, seed=7))
    # Taller than 2:1 and wider than 256: Pillow 13 resizes it vertically first.
    files["strip.png"] = pillow_png(photo_like(270, 600, seed=8, noise=0.0))

    w, h = 48, 32
    files["gray.png"] = pillow_png(Image.fromarray(pattern(w, h, 1, 255, 10)[..., 0], "L"))
    gray_trns = Image.fromarray(pattern(w, h, 1, 255, 11)[..., 0], "L")
    files["gray_trns.png"] = pillow_png(gray_trns, transparency=int(np.asarray(gray_trns)[0, 0]))
    files["gray_alpha.png"] = pillow_png(Image.fromarray(pattern(w, h, 2, 255, 12), "LA"))
    rgb_trns = Image.fromarray(pattern(w, h, 3, 255, 13), "RGB")
    files["rgb_trns.png"] = pillow_png(rgb_trns, transparency=tuple(int(v) for v in np.asarray(rgb_trns)[0, 0]))
    files["rgba.png"] = pillow_png(Image.fromarray(pattern(w, h, 4, 255, 14), "RGBA"))
    files["gray1.png"] = pillow_png(Image.fromarray(pattern(w, h, 1, 255, 15)[..., 0] > 127).convert("1"))

    palette_source = Image.fromarray(pattern(w, h, 3, 255, 16), "RGB")
    p8 = palette_source.quantize(colors=200, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    transparency = bytes([(i * 37) % 256 for i in range(200)])
    files["palette8_trns.png"] = pillow_png(p8, transparency=transparency)
    p4 = palette_source.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    files["palette4.png"] = pillow_png(p4, bits=4)
    p1 = palette_source.quantize(colors=2, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    files["palette1_trns.png"] = pillow_png(p1, bits=1, transparency=0)

    files["gray2.png"] = write_png(pattern(w, h, 1, 3, 17), 2, 0)
    files["gray4.png"] = write_png(pattern(w, h, 1, 15, 18), 4, 0)
    files["gray16.png"] = write_png(pattern(w, h, 1, 65535, 19), 16, 0)
    files["gray_alpha16.png"] = write_png(pattern(w, h, 2, 65535, 20), 16, 4)
    files["rgb16.png"] = write_png(pattern(w, h, 3, 65535, 21), 16, 2)
    files["rgba16.png"] = write_png(pattern(w, h, 4, 65535, 22), 16, 6)
    files["interlaced.png"] = write_png(pattern(37, 29, 3, 255, 23), 8, 2, interlace=True)
    files["interlaced_gray4.png"] = write_png(pattern(13, 11, 1, 15, 24), 4, 0, interlace=True)
    # Ancillary chunks that make libpng warn (a bad iCCP profile would be typical): a
    # gAMA chunk and a text chunk must not change the decoded pixels.
    files["with_chunks.png"] = write_png(
        pattern(w, h, 3, 255, 25), 8, 2,
        extra_chunks=png_chunk(b"gAMA", struct.pack(">I", 45455)) + png_chunk(b"tEXt", b"Comment\x00fixture"))

    # Broken files.
    files["truncated.jpg"] = files["photo.jpg"][: len(files["photo.jpg"]) // 2]
    files["truncated.png"] = files["rgb.png"][: len(files["rgb.png"]) // 2]
    files["truncated_header.png"] = files["rgb.png"][:20]
    corrupt = bytearray(files["small.png"])
    idat = corrupt.index(b"IDAT")
    for i in range(idat + 40, idat + 60):
        corrupt[i] ^= 0x5A
    files["corrupt.png"] = bytes(corrupt)
    buf = io.BytesIO()
    photo_like(16, 12, seed=9).convert("CMYK").save(buf, "JPEG", quality=90)
    files["cmyk.jpg"] = buf.getvalue()  # valid, but CMYK is refused
    files["not_an_image.txt"] = b"This is a text file, not an image.\n"
    files["image.gif"] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"

    notes["gray16.png"] = ("Pillow opens 16-bit gray as I;16 and convert('RGB') clips values above 255; "
                           "the reference here is the high byte of each sample, as for Pillow's 16-bit RGB/RGBA/LA")

    manifest = {"images": {}, "rejected": {}, "resize": []}
    for name, data in sorted(files.items()):
        with open(os.path.join(ROOT, name), "wb") as f:
            f.write(data)

    decodable = [n for n in files if n.endswith((".jpg", ".png")) and not n.startswith(("truncated", "corrupt", "cmyk"))]
    for name in sorted(decodable):
        opened = Image.open(io.BytesIO(files[name]))
        opened.load()
        if name == "gray16.png":
            raw = np.asarray(opened, dtype=np.uint16)
            rgb = np.repeat((raw >> 8).astype(np.uint8)[..., None], 3, axis=-1)
            image = Image.fromarray(rgb, "RGB")
        else:
            image = opened.convert("RGB")
        rgb = np.asarray(image, dtype=np.uint8)
        stem = name.rsplit(".", 1)[0] if name not in ("gray.jpg",) else "gray_jpg"
        entry = {
            "format": "JPEG" if name.endswith(".jpg") else "PNG",
            "pillowMode": opened.mode,
            "width": image.width,
            "height": image.height,
            "fnv1a64": fnv1a64(rgb.tobytes()),
        }
        if image.width * image.height <= NPY_REFERENCE_MAX_PIXELS:
            entry["rgb"] = f"{stem}.rgb.npy"
            np.save(os.path.join(ROOT, entry["rgb"]), rgb.astype("<i4"))
        elif entry["format"] == "JPEG":
            entry["rgb"] = f"{stem}.rgb.png"
            image.save(os.path.join(ROOT, entry["rgb"]), "PNG")
        # Larger 8-bit RGB PNGs need no pixel file: the hash pins Pillow's pixels.
        if name in notes:
            entry["note"] = notes[name]
        if name in ("photo.jpg", "rgb.png", "large.png", "small.png", "tall.png", "strip.png", "gray.jpg"):
            entry["presets"] = {}
            for preset, (resize, crop) in PRESETS.items():
                cropped = preset_crop(image, resize, crop)
                crop_file = f"{stem}.{preset}.png"
                cropped.save(os.path.join(ROOT, crop_file), "PNG")
                tensor = to_normalized_tensor(cropped)
                cross_check_with_torch(cropped, tensor)
                record = {"crop": crop_file, "fnv1a64": fnv1a64(np.asarray(cropped).tobytes()),
                          "resizedWidth": resized_size(image.width, image.height, resize)[0],
                          "resizedHeight": resized_size(image.width, image.height, resize)[1]}
                if name == "photo.jpg" and preset == "torchvision":
                    record["tensor"] = f"{stem}.{preset}.npy"
                    np.save(os.path.join(ROOT, record["tensor"]), tensor)
                entry["presets"][preset] = record
        manifest["images"][name] = entry

    for name in files:
        if name not in decodable:
            try:
                Image.open(io.BytesIO(files[name])).convert("RGB")
                outcome = "Pillow decodes it"
            except Exception as error:  # noqa: BLE001 - recording what Pillow says
                outcome = f"Pillow: {type(error).__name__}: " + re.sub(r" at 0x[0-9a-f]+", "", str(error))
            manifest["rejected"][name] = outcome

    # Plain resizes of photo's Pillow-decoded pixels to awkward sizes.
    photo_rgb = Image.open(io.BytesIO(files["photo.jpg"])).convert("RGB")
    for size in [(101, 77), (400, 301), (320, 100), (33, 240), (7, 5), (1, 1), (319, 241), (640, 17), (250, 90)]:
        resized = photo_rgb.resize(size, Image.BILINEAR)
        file = f"resize/photo_{size[0]}x{size[1]}.png"
        resized.save(os.path.join(ROOT, file), "PNG")
        manifest["resize"].append({"file": file, "width": size[0], "height": size[1],
                                   "fnv1a64": fnv1a64(np.asarray(resized).tobytes())})

    with open(os.path.join(ROOT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")

    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(ROOT) for n in ns)
    print(f"wrote {len(files)} inputs and references to {os.path.normpath(ROOT)} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
