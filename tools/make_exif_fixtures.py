#!/usr/bin/env python3
"""Creates the EXIF orientation fixtures under Tests/Fixtures/exif/ (issue 11, item 8).

Small JPEGs and PNGs whose orientation is recorded in every way Pillow reads it, and what
Pillow makes of them: `ImageOps.exif_transpose(Image.open(p)).convert("RGB")` — what a photo
viewer shows, Elucidate's `--exif apply` — stored as `<name>.applied.npy` (int32, (H, W, 3)),
and the orientation `Image.open(p).getexif()` reports, in manifest.json.

- o1.jpg … o8.jpg: 7 wide × 4 high, every pixel a different colour, EXIF (little-endian, II)
  orientation 1 … 8.
- mm_o6.jpg: a big-endian (MM) EXIF block, orientation 6, with another tag before it.
- xmp_o8.jpg: no EXIF, orientation 8 in an XMP packet (Pillow falls back to XMP).
- exif3_xmp6.jpg: EXIF orientation 3 and XMP 6: EXIF wins.
- o6.png: a PNG eXIf chunk (before IDAT), orientation 6.
- o5_after_idat.png: the eXIf chunk after IDAT (Pillow reads it when it loads the pixels).
- phone_o6.jpg: a 224 × 112 photo as a phone stores it, orientation 6: a viewer shows it
  112 wide × 224 high (the CLI tests).

Deterministic: re-running it with the pinned Pillow/numpy (tools/requirements.txt) writes the
same bytes.

Usage: python3 tools/make_exif_fixtures.py
"""

import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "exif")


def pattern(width, height, busy=True):
    y, x = np.mgrid[0:height, 0:width]
    blue = (x * 37 + y * 91) % 256 if busy else (x + y) * 255 // (width + height)
    pixels = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), blue], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def tiff(orientation, big_endian=False, extra_tag_first=False):
    """An EXIF TIFF block whose IFD0 holds the orientation (SHORT, count 1)."""
    e = ">" if big_endian else "<"
    entries = []
    if extra_tag_first:
        entries.append(struct.pack(e + "HHI4s", 0x010F, 2, 4, b"Acm\x00"))  # Make, ASCII, inline
    entries.append(struct.pack(e + "HHIH2s", 0x0112, 3, 1, orientation, b"\x00\x00"))
    head = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
    return b"Exif\x00\x00" + head + struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0)


def xmp(orientation):
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            b'<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="'
            + str(orientation).encode() + b'"/></rdf:RDF></x:xmpmeta>')


def jpeg(image, **options):
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, subsampling=0, **options)
    return out.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(image, exif=None, after_idat=False):
    out = io.BytesIO()
    image.save(out, "PNG")
    data = out.getvalue()
    if exif is None:
        return data
    chunk = png_chunk(b"eXIf", exif[len(b"Exif\x00\x00"):])
    if after_idat:
        iend = data.rindex(b"IEND") - 4
        return data[:iend] + chunk + data[iend:]
    ihdr_end = 8 + 25
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def main():
    os.makedirs(ROOT, exist_ok=True)
    small = pattern(7, 4)
    files = {f"o{n}.jpg": jpeg(small, exif=tiff(n)) for n in range(1, 9)}
    files["mm_o6.jpg"] = jpeg(small, exif=tiff(6, big_endian=True, extra_tag_first=True))
    files["xmp_o8.jpg"] = jpeg(small, xmp=xmp(8))
    files["exif3_xmp6.jpg"] = jpeg(small, exif=tiff(3), xmp=xmp(6))
    files["o6.png"] = png(small, exif=tiff(6))
    files["o5_after_idat.png"] = png(small, exif=tiff(5), after_idat=True)
    files["phone_o6.jpg"] = jpeg(pattern(224, 112, busy=False), exif=tiff(6))

    manifest = {}
    for name, data in sorted(files.items()):
        with open(os.path.join(ROOT, name), "wb") as f:
            f.write(data)
        image = Image.open(io.BytesIO(data))
        image.load()
        orientation = image.getexif().get(0x0112, 1)
        applied = ImageOps.exif_transpose(image).convert("RGB")
        entry = {"stored": list(image.size), "orientation": orientation, "applied": list(applied.size)}
        if applied.width * applied.height <= 64:
            np.save(os.path.join(ROOT, name.rsplit(".", 1)[0] + "." + name.rsplit(".", 1)[1] + ".applied.npy"),
                    np.asarray(applied).astype(np.int32))
            entry["pixels"] = name + ".applied.npy"
        manifest[name] = entry
    with open(os.path.join(ROOT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
