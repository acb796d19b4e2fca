"""TFRecord framing: length, masked CRC-32C of the length, payload, masked CRC-32C of the payload.

Written without TensorFlow for the same start-up reason as formats.example; CRC-32C comes from
google-crc32c (hardware-accelerated C). TensorFlow's TFRecordDataset reads these files in the tests.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import google_crc32c

from segprep.errors import SegprepError
from segprep.fileio import read_regular_file

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C: rotate right by 15 bits and add a constant."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(payload: bytes) -> bytes:
    """One complete TFRecord for the payload."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc(length)) + payload + struct.pack("<I", masked_crc(payload))


class CorruptRecordError(SegprepError, ValueError):
    """A TFRecord file is truncated or fails a CRC check; the message names the file and the offset."""


def iter_records(path: Path) -> Iterator[bytes]:
    """Yield each record's payload, checking both CRCs; raise CorruptRecordError naming file and offset."""
    yield from iter_framed(read_regular_file(path), str(path))


def iter_framed(data: bytes, source: str) -> Iterator[bytes]:
    """The payloads of TFRecord-framed bytes; CorruptRecordError naming source and the byte offset."""
    pos = 0
    size = len(data)
    while pos < size:
        if pos + 12 > size:
            raise CorruptRecordError(f"{source}: truncated record header at byte {pos}")
        length_bytes = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack_from("<I", data, pos + 8)
        if masked_crc(length_bytes) != length_crc:
            raise CorruptRecordError(f"{source}: bad length CRC at byte {pos}")
        start = pos + 12
        end = start + length
        if end + 4 > size:
            raise CorruptRecordError(f"{source}: truncated record at byte {pos}")
        payload = data[start:end]
        (payload_crc,) = struct.unpack_from("<I", data, end)
        if masked_crc(payload) != payload_crc:
            raise CorruptRecordError(f"{source}: bad data CRC in record at byte {pos}")
        yield payload
        pos = end + 4
