"""Payload checks: what segprep proves about image and label bytes before it stores them.

Images are stored byte for byte, so anything a reader later chokes on (tf.io.decode_jpeg in
`segtrain fit`, hours into a run) must be refused here. The structural walk of
segprep.formats.images (every PNG chunk's CRC, the JPEG marker segments) is free but blind to
damage inside JPEG entropy-coded data, which shows only when the scan is Huffman-decoded.

JPEG (default): Pillow's libjpeg decodes the image at 1/8 scale (DC only: the Huffman decoding
of every coefficient is the same work as a full decode, the inverse DCT and colour conversion
are skipped). libjpeg reports most damage in a scan only as a *warning* ("Corrupt JPEG data:
N extraneous bytes before marker", "premature end of data segment") and goes on with garbage
pixels; Pillow silences those warnings, and TensorFlow ignores them. What the warnings mean can be
observed from outside, though, because a valid scan's Huffman codes end exactly at its last byte:

- too short (the decoder finishes before the data ends): the bytes are served to the decoder
  only up to the scan's last byte; a decoder that finishes the image without asking for that
  byte has decoded garbage (single-scan files, where the image is complete after the scan);
- too long (the decoder needs bits past the data, which libjpeg silently replaces with zeros):
  a second decode gets 8 filler bytes after every entropy-coded segment (scan or restart
  interval), and a single-scan file's end-of-image marker is dropped. A valid scan never reads
  the filler (its bit-buffer read-ahead is at most 57 bits), so its pixels are the same; a scan
  that reads past its end either runs out of data (Pillow: "truncated") or decodes the filler's
  bits instead of zeros and so gives other pixels.

What no decoder can see (a flipped bit that still decodes to valid codes) passes; within that,
with --decode-images the same checks run at full size, where damage in AC coefficients shows too.

PNG: the chunk walk checks every chunk's CRC (images and labels alike). A zlib stream broken
inside IDAT chunks with valid CRCs shows only when it is inflated, which for PNG images costs
more than the rest of a conversion, so it is an option (--decode-images): every IDAT byte is
inflated (stream errors, exact decompressed size, trailing data, row filter types; undoing
the filters cannot fail after that). Labels always get that check and a Pillow decode
(segprep.ops.labels): Pillow alone checks no IDAT CRC and pads a zlib stream that ends early.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

from segprep.formats.images import PNG_SIGNATURE, ImageFormatError, ImageInfo

# Names of the checks, as recorded in each manifest's parameters["checks"].
PNG_CHUNKS = "png-chunk-crc"  # every chunk's length and CRC, IHDR first, IEND present
PNG_INFLATE = "png-inflate-all"  # every IDAT byte inflated: stream, exact size, row filters, chunk rules
PNG_FULL_DECODE = "png-full-decode"  # Pillow decodes every pixel (labels, always)
JPEG_MARKERS = "jpeg-markers"  # marker segments, frame header, end-of-image marker
JPEG_SCAN_DECODE = "jpeg-scan-decode-1/8"  # every scan Huffman-decoded, must end exactly at its end
JPEG_FULL_DECODE = "jpeg-full-decode"  # the same at full size, with colour conversion
LABEL_VALUES = "label-values"  # every pixel a class or the ignore label

# Appended after each entropy-coded segment by the "too long" check: no 0xFF (it would start a
# marker) and a leading 1 bit, so that even a one-bit overrun decodes other bits than libjpeg's
# zero fill. 8 bytes cover libjpeg's largest bit-buffer read-ahead (57 bits).
_FILLER = bytes.fromhex("a53c96c35af00f69")
# 0xFF followed by anything but a stuffed zero: a marker (or fill bytes before one).
_MARKER = re.compile(rb"\xff[^\x00]")
_RST = range(0xD0, 0xD8)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_HUFFMAN_DCT = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive
_STANDALONE = {0x01, *_RST}
# Allowed PNG bit depths per colour type, and samples per pixel in the file.
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7: (x start, y start, x step, y step) of the seven passes.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


@dataclass(frozen=True)
class PayloadChecks:
    """Which checks the writer runs on every sample; recorded in the manifest."""

    decode_images: bool = False  # --decode-images: full decode of PNG and JPEG images

    def image_checks(self) -> list[str]:
        if self.decode_images:
            return [PNG_CHUNKS, PNG_INFLATE, JPEG_MARKERS, JPEG_FULL_DECODE]
        return [PNG_CHUNKS, JPEG_MARKERS, JPEG_SCAN_DECODE]

    def label_checks(self) -> list[str]:
        return [PNG_CHUNKS, PNG_INFLATE, PNG_FULL_DECODE, LABEL_VALUES]

    def manifest_entry(self) -> dict[str, list[str]]:
        """The value of parameters["checks"]: part of the split's fingerprint."""
        return {"image": self.image_checks(), "label": self.label_checks()}


def check_image_payload(data: bytes, info: ImageInfo, checks: PayloadChecks) -> None:
    """Refuse image bytes that a decoder would reject; read_image_info(data) has already passed.

    Raises ImageFormatError with a one-line reason.
    """
    if info.format == "jpeg":
        if info.bit_depth != 8:
            raise ImageFormatError(f"unsupported JPEG ({info.bit_depth}-bit samples; TensorFlow decodes 8-bit JPEGs only)")
        check_jpeg_scans(data, full_size=checks.decode_images)
    elif info.format == "png" and checks.decode_images:
        check_png_image_data(data, info)


# --------------------------------------------------------------------------- Pillow, strictly


@contextlib.contextmanager
def strict_pillow() -> Iterator[None]:
    """Pillow that raises on truncated data, whatever another module set globally.

    ImageFile.LOAD_TRUNCATED_IMAGES=True would make Pillow pad a short image with grey and
    succeed; segprep's worker processes are single-threaded, so the global is safe to flip.
    """
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. DecompressionBombWarning: the size is checked elsewhere
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def describe_decoder_error(exc: BaseException) -> str:
    """Pillow's exception as a short reason on one line."""
    text = " ".join(str(exc).split())
    if text.startswith("image file is truncated"):
        return "the decoder ran out of data before the last row"
    return text or type(exc).__name__


# --------------------------------------------------------------------------- JPEG


class _ServedUpTo(io.BytesIO):
    """A file that serves its bytes only up to `probe` until someone reads at the probe.

    Pillow's JPEG decoder suspends and asks for more data when it needs it; a read at the probe
    therefore means the decoder needed the byte at `probe` (or later) to finish the image.
    """

    def __init__(self, data: bytes, probe: int | None) -> None:
        super().__init__(data)
        self.probe = probe
        self.asked_past_probe = probe is None

    def read(self, size: int | None = -1) -> bytes:
        if not self.asked_past_probe:
            pos = self.tell()
            assert self.probe is not None
            if pos >= self.probe:
                self.asked_past_probe = True
            elif size is None or size < 0 or pos + size > self.probe:
                size = self.probe - pos
        return super().read(size)


@dataclass(frozen=True)
class _ScanLayout:
    """Where the entropy-coded segments of a JPEG end (index of the 0xFF of the marker after each)."""

    segment_ends: list[int]
    final_marker: int  # the marker after the last segment (0xD9 in a valid file)
    scans: int
    frame_marker: int  # the start-of-frame marker: 0xC0-0xC2 are the Huffman-coded DCT processes


def jpeg_scan_layout(data: bytes) -> _ScanLayout:
    """Walk every marker segment and every scan of a JPEG; raise ImageFormatError if the walk fails."""
    size = len(data)
    pos = 2
    ends: list[int] = []
    scans = 0
    final_marker = 0xD9
    frame_marker = 0
    while True:
        if pos < size and data[pos] != 0xFF:
            raise ImageFormatError(f"corrupt JPEG data (extraneous bytes at offset {pos} where a marker should start)")
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            raise ImageFormatError("truncated JPEG (no end-of-image marker)")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            break
        if marker in _STANDALONE:
            continue
        if marker < 0xC0:
            raise ImageFormatError(f"corrupt JPEG data (bytes ff {marker:02x} are neither a stuffed byte nor a marker)")
        if marker == 0xD8:
            raise ImageFormatError("corrupt JPEG (start-of-image marker inside the image)")
        if pos + 2 > size:
            raise ImageFormatError(f"truncated JPEG (marker 0x{marker:02x} cut short)")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > size:
            raise ImageFormatError(f"truncated JPEG (marker 0x{marker:02x} cut short)")
        pos += length
        if marker in _SOF:
            frame_marker = marker
        if marker != 0xDA:
            continue
        scans += 1
        while True:  # the scan's entropy-coded data: restart intervals up to the next other marker
            found = _MARKER.search(data, pos)
            if found is None:
                raise ImageFormatError("truncated JPEG (scan data without an end-of-image marker)")
            end = code = found.start()
            while code + 1 < size and data[code + 1] == 0xFF:  # fill bytes before the marker code
                code += 1
            if code + 1 >= size:
                raise ImageFormatError("truncated JPEG (scan data without an end-of-image marker)")
            ends.append(end)
            final_marker = data[code + 1]
            if final_marker not in _RST:
                pos = end  # the marker itself is read by the loop above
                break
            pos = code + 2
    if not scans:
        raise ImageFormatError("corrupt JPEG (no scan)")
    return _ScanLayout(ends, final_marker, scans, frame_marker)


def _decode_jpeg(data: bytes, probe: int | None, full_size: bool) -> tuple[bytes, bool]:
    """(pixels, whether the decoder needed the byte at probe); raises what Pillow raises."""
    served = _ServedUpTo(data, probe)
    with Image.open(served) as image:
        if image.format not in ("JPEG", "MPO"):
            raise ImageFormatError(f"Pillow reads it as {image.format}, not JPEG")
        if not full_size:
            image.draft("YCbCr" if image.mode == "RGB" else image.mode, (1, 1))  # 1/8 scale
        image.load()
        return image.tobytes(), served.asked_past_probe


def _with_filler(data: bytes, layout: _ScanLayout) -> bytes:
    """The JPEG with _FILLER after every entropy-coded segment (see the module docstring).

    A single-scan file ends after the last filler: a decoder that overruns the last segment by
    more than the filler runs out of data. Multi-scan files (progressive) keep their tail, as
    Pillow reads them completely before it outputs a row.
    """
    parts = []
    start = 0
    for end in layout.segment_ends:
        parts += [data[start:end], _FILLER]
        start = end
    if layout.scans > 1:
        parts.append(data[start:])
    return b"".join(parts)


def check_jpeg_scans(data: bytes, full_size: bool = False) -> None:
    """Huffman-decode every scan and require each to end exactly where its data ends.

    Raises ImageFormatError ("corrupt JPEG data (...)") for what libjpeg rejects or only warns
    about: see the module docstring for how and what it cannot see.
    """
    layout = jpeg_scan_layout(data)
    # In a single-scan file the image is complete after the last segment's last byte; withhold it.
    probe = layout.segment_ends[-1] - 1 if layout.scans == 1 else None
    try:
        with strict_pillow():
            pixels, needed_last_byte = _decode_jpeg(data, probe, full_size)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ... for damaged files
        raise ImageFormatError(f"corrupt JPEG data ({describe_decoder_error(exc)})") from None
    if layout.frame_marker not in _HUFFMAN_DCT:
        return  # arithmetic or lossless coding: the scan-end reasoning below is about Huffman codes
    if not needed_last_byte:
        raise ImageFormatError(
            f"corrupt JPEG data (scan decodes before its data ends: extraneous bytes before marker 0x{layout.final_marker:02x})"
        )
    try:
        with strict_pillow():
            padded_pixels, _ = _decode_jpeg(_with_filler(data, layout), None, full_size)
    except Exception:
        padded_pixels = None
    if padded_pixels != pixels:
        raise ImageFormatError("corrupt JPEG data (premature end of data segment: a scan decodes past its data)")


# --------------------------------------------------------------------------- PNG


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """(type, payload) of every chunk; the structure and CRCs were checked by read_image_info."""
    view = memoryview(data)
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        yield kind, view[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


def _png_image_data(data: bytes, color_type: int) -> tuple[bytes, tuple[int, ...]]:
    """The concatenated IDAT payloads and the IHDR fields, after the chunk-order rules."""
    header: tuple[int, ...] = ()
    idat: list[memoryview] = []
    idat_closed = palette = False
    for kind, payload in _png_chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"PLTE":
            if idat or len(payload) % 3 or not 0 < len(payload) <= 768:
                raise ImageFormatError("corrupt PNG (bad PLTE chunk)")
            palette = True
        elif kind == b"IDAT":
            if idat_closed:
                raise ImageFormatError("corrupt PNG (IDAT chunks are not consecutive)")
            idat.append(payload)
        elif kind[0] < 0x61 and kind != b"IEND":  # an upper-case first letter: a critical chunk
            raise ImageFormatError(f"unsupported PNG (unknown critical chunk {kind.decode('latin-1')!r})")
        if idat and kind != b"IDAT":
            idat_closed = True
    if not idat:
        raise ImageFormatError("corrupt PNG (no IDAT chunk)")
    if color_type == 3 and not palette:
        raise ImageFormatError("corrupt PNG (palette image without PLTE chunk)")
    return b"".join(idat), header


def _png_passes(width: int, height: int, interlace: int) -> list[tuple[int, int]]:
    """(width, height) of each reduced image: one for a plain PNG, up to seven for Adam7."""
    if not interlace:
        return [(width, height)]
    sizes = [((width - x + dx - 1) // dx, (height - y + dy - 1) // dy) for x, y, dx, dy in _ADAM7]
    return [(w, h) for w, h in sizes if w and h]


def check_png_image_data(data: bytes, info: ImageInfo) -> None:
    """Inflate every IDAT byte (--decode-images); raise ImageFormatError for what a decoder rejects.

    Catches what chunk CRCs cannot: a zlib stream damaged before the CRCs were computed, too
    little or too much image data, data after the end of the stream, unknown row filter types,
    and the chunk rules libpng enforces (PLTE of palette images, consecutive IDATs, no unknown
    critical chunk). Undoing the row filters cannot fail once those hold, so the pixels are not
    computed: this is about 60% of a Pillow decode and refuses more (Pillow and libpng accept
    surplus image data).
    """
    color_type = info.png_color_type if info.png_color_type is not None else -1
    compressed, header = _png_image_data(data, color_type)
    width, height, depth, _, compression, filter_method, interlace = header
    if depth not in _PNG_DEPTHS.get(color_type, ()) or compression or filter_method or interlace > 1:
        raise ImageFormatError(f"corrupt PNG header (colour type {color_type}, bit depth {depth}, methods {compression}/{filter_method}/{interlace})")
    passes = _png_passes(width, height, interlace)
    row_bytes = [(w * _PNG_SAMPLES[color_type] * depth + 7) // 8 for w, _ in passes]
    expected = sum((1 + r) * h for r, (_, h) in zip(row_bytes, passes))
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected + 1)  # never inflate more than one byte too many
    except zlib.error as exc:
        raise ImageFormatError(f"corrupt PNG image data ({exc})") from None
    if len(raw) > expected:
        raise ImageFormatError(f"corrupt PNG image data (more than the {expected} bytes of a {width}x{height} image)")
    if not inflater.eof:
        raise ImageFormatError(f"corrupt PNG image data (zlib stream cut short: {len(raw)} of {expected} bytes)")
    if len(raw) < expected:
        raise ImageFormatError(f"corrupt PNG image data ({len(raw)} of {expected} bytes)")
    if inflater.unused_data:
        raise ImageFormatError(f"corrupt PNG image data ({len(inflater.unused_data)} bytes after the end of the zlib stream)")
    _check_row_filters(raw, passes, row_bytes)


def _check_row_filters(raw: bytes, passes: list[tuple[int, int]], row_bytes: list[int]) -> None:
    buffer = np.frombuffer(raw, dtype=np.uint8)
    start = 0
    for (_, rows), stride in zip(passes, row_bytes):
        filters = buffer[start : start + rows * (stride + 1) : stride + 1]
        if filters.size and int(filters.max()) > 4:
            row = int(np.argmax(filters > 4))
            raise ImageFormatError(f"corrupt PNG image data (unknown filter type {int(filters[row])} on row {row})")
        start += rows * (stride + 1)
