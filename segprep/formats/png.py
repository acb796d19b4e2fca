"""Index-PNG encoding: single-channel 8-bit PNGs of raw class ids.

Written by hand instead of through PIL because label maps are long runs of equal values: no
row filter plus zlib's run-length strategy encodes a 360x480 CamVid label in ~0.5 ms, about 3x
faster than PIL's encoder at its fastest level and 1.5x smaller. The result is a plain PNG that
every decoder reads (tests decode it with PIL and tf.io.decode_png).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from segprep.formats.images import PNG_SIGNATURE


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_index_png(labels: np.ndarray, lookup: np.ndarray | None = None) -> bytes:
    """Encode an (H, W) uint8 array as a greyscale 8-bit PNG whose pixel values are the array values.

    lookup: an optional 256-entry uint8 table applied on the way (saves a copy of the image).
    """
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 array, got {labels.dtype} {labels.shape}")
    height, width = labels.shape
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type 0 (none) on every row
    if lookup is None:
        rows[:, 1:] = labels
    else:
        # bytes.translate is a C table lookup, ~1.5x faster than np.take into the strided rows.
        remapped = np.ascontiguousarray(labels).tobytes().translate(lookup.astype(np.uint8).tobytes())
        rows[:, 1:] = np.frombuffer(remapped, dtype=np.uint8).reshape(height, width)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = compressor.compress(rows.tobytes()) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
