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

from segprep.errors import SegprepError

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


class ExampleDecodeError(SegprepError, ValueError):
    """Bytes that are not a well-formed tf.train.Example; the caller adds the file and record."""


_WIRE_VARINT, _WIRE_64BIT, _WIRE_BYTES, _WIRE_32BIT = 0, 1, 2, 5
_UINT64 = (1 << 64) - 1


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ExampleDecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ExampleDecodeError("varint longer than 10 bytes")


def _fields(data: bytes) -> Iterable[tuple[int, int, bytes | int]]:
    """Yield (field number, wire type, value) for one message; length-delimited values as bytes."""
    pos = 0
    end = len(data)
    while pos < end:
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ExampleDecodeError("field number 0")
        value: bytes | int
        if wire == _WIRE_VARINT:
            value, pos = _read_varint(data, pos)
        elif wire == _WIRE_BYTES:
            length, pos = _read_varint(data, pos)
            if pos + length > end:
                raise ExampleDecodeError("truncated length-delimited field")
            value = data[pos : pos + length]
            pos += length
        elif wire in (_WIRE_32BIT, _WIRE_64BIT):
            width = 4 if wire == _WIRE_32BIT else 8
            if pos + width > end:
                raise ExampleDecodeError("truncated fixed-width field")
            value = data[pos : pos + width]
            pos += width
        else:
            raise ExampleDecodeError(f"unsupported wire type {wire}")
        yield number, wire, value


def _expect(wire: int, wanted: int, what: str) -> None:
    """A known field sent with another wire type: protobuf refuses such a message, and so do we."""
    if wire != wanted:
        raise ExampleDecodeError(f"{what} has wire type {wire}, expected {wanted}")


def _signed(value: int) -> int:
    value &= _UINT64
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes_list(data: bytes) -> list[bytes]:
    values: list[bytes] = []
    for n, wire, v in _fields(data):
        if n == 1:
            _expect(wire, _WIRE_BYTES, "BytesList.value")
            values.append(v)  # type: ignore[arg-type]
    return values


def _float_list(data: bytes) -> list[float]:
    floats: list[float] = []
    for n, wire, v in _fields(data):
        if n != 1:
            continue
        if wire == _WIRE_BYTES:  # packed
            if len(v) % 4:  # type: ignore[arg-type]
                raise ExampleDecodeError(f"packed FloatList of {len(v)} bytes, not a multiple of 4")  # type: ignore[arg-type]
            floats.extend(struct.unpack(f"<{len(v) // 4}f", v))  # type: ignore[arg-type,operator]
        else:
            _expect(wire, _WIRE_32BIT, "FloatList.value")
            floats.append(struct.unpack("<f", v)[0])  # type: ignore[arg-type]
    return floats


def _int64_list(data: bytes) -> list[int]:
    ints: list[int] = []
    for n, wire, v in _fields(data):
        if n != 1:
            continue
        if wire == _WIRE_BYTES:  # packed
            pos = 0
            while pos < len(v):  # type: ignore[arg-type]
                item, pos = _read_varint(v, pos)  # type: ignore[arg-type]
                ints.append(_signed(item))
        else:
            _expect(wire, _WIRE_VARINT, "Int64List.value")
            ints.append(_signed(v))  # type: ignore[arg-type]
    return ints


_LISTS = {1: _bytes_list, 2: _float_list, 3: _int64_list}


def _decode_feature(data: bytes) -> list[bytes] | list[int] | list[float]:
    """The Feature's list; as in protobuf, the last member of the `kind` oneof wins."""
    value: list[bytes] | list[int] | list[float] = []
    for number, wire, payload in _fields(data):
        if number in _LISTS:
            _expect(wire, _WIRE_BYTES, "Feature.kind")
            value = _LISTS[number](payload)  # type: ignore[arg-type]
    return value


def decode_example(data: bytes) -> dict[str, list[bytes] | list[int] | list[float]]:
    """Parse a serialised tf.train.Example into {key: values}, keeping the order keys appear in.

    Anything that is not a well-formed Example raises ExampleDecodeError.
    """
    result: dict[str, list[bytes] | list[int] | list[float]] = {}
    for number, wire, features in _fields(data):
        if number != 1:
            continue
        _expect(wire, _WIRE_BYTES, "Example.features")
        for entry_number, entry_wire, entry in _fields(features):  # type: ignore[arg-type]
            if entry_number != 1:
                continue
            _expect(entry_wire, _WIRE_BYTES, "Features.feature")
            key = b""
            value: list[bytes] | list[int] | list[float] = []
            for n, w, v in _fields(entry):  # type: ignore[arg-type]
                if n == 1:
                    _expect(w, _WIRE_BYTES, "feature key")
                    key = v  # type: ignore[assignment]
                elif n == 2:
                    _expect(w, _WIRE_BYTES, "Feature")
                    value = _decode_feature(v)  # type: ignore[arg-type]
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise ExampleDecodeError(f"feature key {key[:40]!r} is not UTF-8") from None
            result[name] = value
    return result
