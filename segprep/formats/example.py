"""tf.train.Example protobuf encoding and decoding, limited to the bytes and int64 features segprep uses.

Hand-written over the protobuf wire format (a few dozen lines) rather than through TensorFlow's
example_pb2, because importing that module imports all of TensorFlow (~3-4 s), which would
dominate every segprep command. The tests parse what this writes with tf.io.parse_single_example
and compare field by field.

Wire layout: Example{1: Features}; Features{1: repeated map entry{1: key, 2: Feature}};
Feature{1: BytesList{1: repeated bytes} | 2: FloatList{1: packed float} | 3: Int64List{1: packed int64}}.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable

FeatureValue = bytes | int | list[bytes] | list[int] | list[float]


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 is sent as its two's complement, ten bytes long
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _header(number: int, length: int) -> bytes:
    return _varint(number << 3 | 2) + _varint(length)


def encode_example(features: Iterable[tuple[str, bytes | int]]) -> bytes:
    """Serialise (key, value) pairs, in the given order, as a tf.train.Example.

    A bytes value becomes a one-element BytesList, an int a one-element Int64List. Headers are
    computed from lengths and everything is joined once, so large image bytes are copied once.
    """
    parts: list[bytes] = []
    total = 0
    for key, value in features:
        if isinstance(value, bytes):
            payload, kind = value, 1  # BytesList.value
        elif isinstance(value, int):
            payload, kind = _varint(value), 3  # Int64List.value, packed
        else:
            raise TypeError(f"unsupported feature value {type(value).__name__}")
        value_header = _header(1, len(payload))
        list_len = len(value_header) + len(payload)
        list_header = _header(kind, list_len)
        feature_len = len(list_header) + list_len
        prefix = _key_prefix(key) + _header(2, feature_len) + list_header + value_header
        entry_len = len(prefix) + len(payload)
        entry_header = _header(1, entry_len)  # Features.feature map entry
        parts += (entry_header, prefix, payload)
        total += len(entry_header) + entry_len
    return _header(1, total) + b"".join(parts)


@functools.lru_cache(maxsize=64)
def _key_prefix(key: str) -> bytes:
    """The map entry's key field; the same few keys recur in every record."""
    encoded = key.encode()
    return _header(1, len(encoded)) + encoded


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> Iterable[tuple[int, int, bytes | int]]:
    """Yield (field number, wire type, value) for one message; length-delimited values as bytes."""
    pos = 0
    end = len(data)
    while pos < end:
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > end:
                raise ValueError("truncated length-delimited field")
            value = data[pos : pos + length]
            pos += length
        elif wire == 5:
            value = data[pos : pos + 4]
            pos += 4
        elif wire == 1:
            value = data[pos : pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_feature(data: bytes) -> list[bytes] | list[int] | list[float]:
    for number, _, payload in _fields(data):
        if number == 1:
            return [v for n, _, v in _fields(payload) if n == 1]
        if number == 2:
            floats: list[float] = []
            for n, wire, v in _fields(payload):
                if n == 1 and wire == 2:
                    floats.extend(struct.unpack(f"<{len(v) // 4}f", v))
                elif n == 1:
                    floats.append(struct.unpack("<f", v)[0])
            return floats
        if number == 3:
            ints: list[int] = []
            for n, wire, v in _fields(payload):
                if n == 1 and wire == 2:  # packed
                    pos = 0
                    while pos < len(v):
                        item, pos = _read_varint(v, pos)
                        ints.append(_signed(item))
                elif n == 1:
                    ints.append(_signed(v))
            return ints
    return []


def decode_example(data: bytes) -> dict[str, list[bytes] | list[int] | list[float]]:
    """Parse a serialised tf.train.Example into {key: values}, keeping the order keys appear in."""
    result: dict[str, list[bytes] | list[int] | list[float]] = {}
    for number, _, features in _fields(data):
        if number != 1:
            continue
        for entry_number, _, entry in _fields(features):
            if entry_number != 1:
                continue
            key = b""
            value: list[bytes] | list[int] | list[float] = []
            for n, _, v in _fields(entry):
                if n == 1:
                    key = v
                elif n == 2:
                    value = _decode_feature(v)
            result[key.decode()] = value
    return result
