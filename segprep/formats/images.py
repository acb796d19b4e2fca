"""Image identification and structural checks from the encoded bytes, without decoding pixels.

segprep stores images byte for byte and must learn their format and size without paying for a
full decode (decoding is ~4 ms per CamVid frame, 10x the rest of the per-sample work). The
checks here walk the file structure instead: every PNG chunk with its CRC, the JPEG marker
segments up to the scan and the end-of-image marker after it. That catches truncated and
corrupted files without decoding; it cannot see damage inside JPEG entropy-coded data or inside
a PNG's zlib stream: segprep.formats.payload decodes what must be decoded for that.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from segprep.errors import SegprepError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"

# PNG colour type -> channels a decoder produces.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageFormatError(SegprepError, ValueError):
    """The bytes are not a complete, well-formed JPEG or PNG (or do not decode)."""


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an encoded image."""

    format: str  # "jpeg" or "png", from the magic bytes
    width: int
    height: int
    channels: int  # channels stored in the file (PNG palette counts as 3)
    bit_depth: int = 8
    png_color_type: int | None = None


def sniff_format(data: bytes) -> str | None:
    """'png', 'jpeg' or None, from the magic bytes (never from a file extension)."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SOI):
        return "jpeg"
    return None


def read_image_info(data: bytes) -> ImageInfo:
    """Format, size and channels of a JPEG or PNG, after a structural integrity check."""
    kind = sniff_format(data)
    if kind == "png":
        return _png_info(data)
    if kind == "jpeg":
        return _jpeg_info(data)
    head = data[:8].hex(" ") if data else "empty file"
    raise ImageFormatError(f"not a JPEG or PNG (starts with {head})")


def _png_info(data: bytes) -> ImageInfo:
    pos = len(PNG_SIGNATURE)
    size = len(data)
    ihdr: tuple[int, ...] | None = None
    palette = False
    while True:
        if pos + 8 > size:
            raise ImageFormatError("truncated PNG (no IEND chunk)")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > size:
            raise ImageFormatError(f"truncated PNG (chunk {ctype.decode('latin-1')!r} cut short)")
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(memoryview(data)[pos + 4 : end]) != crc:
            raise ImageFormatError(f"corrupt PNG (bad CRC in chunk {ctype.decode('latin-1')!r})")
        if ihdr is None:
            if ctype != b"IHDR" or length != 13:
                raise ImageFormatError("corrupt PNG (first chunk is not IHDR)")
            ihdr = struct.unpack_from(">IIBBBBB", data, pos + 8)
        palette = palette or ctype == b"PLTE"
        if ctype == b"IEND":
            break
        pos = end + 4
    width, height, depth, color_type = ihdr[0], ihdr[1], ihdr[2], ihdr[3]
    if width == 0 or height == 0 or color_type not in _PNG_CHANNELS:
        raise ImageFormatError(f"corrupt PNG header ({width}x{height}, colour type {color_type})")
    if color_type == 3 and not palette:
        # Pillow opens it, libpng (and so TensorFlow's decoder, at training time) refuses it.
        raise ImageFormatError("corrupt PNG (palette image without PLTE chunk)")
    return ImageInfo("png", width, height, _PNG_CHANNELS[color_type], depth, color_type)


def _jpeg_info(data: bytes) -> ImageInfo:
    pos = 2
    size = len(data)
    frame: tuple[int, int, int, int] | None = None
    while True:
        # Markers may be preceded by any number of 0xFF fill bytes.
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            raise ImageFormatError("truncated JPEG (no scan data)")
        marker = data[pos]
        pos += 1
        if marker == 0xD8 or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # stand-alone markers carry no length
        if marker == 0xD9:
            raise ImageFormatError("corrupt JPEG (end of image before any scan)")
        if pos + 2 > size:
            raise ImageFormatError("truncated JPEG header")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > size:
            raise ImageFormatError("truncated JPEG header")
        if marker in _JPEG_SOF:
            if length < 8:
                raise ImageFormatError("corrupt JPEG frame header")
            precision, height, width, components = struct.unpack_from(">BHHB", data, pos + 2)
            frame = (precision, height, width, components)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            if frame is None:
                raise ImageFormatError("corrupt JPEG (scan before frame header)")
            # 0xFFD9 cannot occur inside entropy-coded data (0xFF is stuffed), so its presence
            # after the scan header is the sign of a complete file.
            if data.rfind(b"\xff\xd9", pos + length) == -1:
                raise ImageFormatError("truncated JPEG (no end-of-image marker)")
            break
        pos += length
    precision, height, width, components = frame
    if width == 0 or height == 0:
        raise ImageFormatError(f"unsupported JPEG (size {width}x{height} not in the frame header)")
    if components not in (1, 3):
        raise ImageFormatError(f"unsupported JPEG with {components} components (CMYK?); convert it to RGB")
    return ImageInfo("jpeg", width, height, components, precision)
