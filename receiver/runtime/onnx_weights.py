"""Read an ONNX file's initializers and metadata without the ``onnx`` package.

The runtime depends only on numpy and onnxruntime, and onnxruntime does not expose initializer
values, so this module decodes the few protobuf messages it needs (ModelProto -> GraphProto ->
TensorProto, StringStringEntryProto) straight from the wire format.  Float16 initializers
(``<name>__f16``, written by ``training.lpcnet.onnx_fp16``) are returned as float32 under their
original name, exactly as the graph's Cast nodes present them to the network.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class ModelFileError(Exception):
    """A model file is missing, truncated or not the ONNX the runtime expects."""


_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
           10: np.float16, 11: np.float64}


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ModelFileError("truncated protobuf varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ModelFileError("malformed protobuf varint")


def _fields(buf: memoryview):
    """Yield (field number, wire type, value) of one message; value is int or memoryview."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            ln, pos = _varint(buf, pos)
            if pos + ln > n:
                raise ModelFileError("truncated protobuf field")
            val, pos = buf[pos:pos + ln], pos + ln
        elif wire == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ModelFileError(f"unsupported protobuf wire type {wire}")
        if pos > n:
            raise ModelFileError("truncated protobuf message")
        yield field, wire, val


def _packed_varints(val, wire) -> list[int]:
    if wire == 0:
        return [val]
    out, pos = [], 0
    while pos < len(val):
        v, pos = _varint(val, pos)
        out.append(v)
    return out


def _tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype_code = 0
    name = ""
    raw = None
    float_data: list = []
    int32_data: list[int] = []
    int64_data: list[int] = []
    for field, wire, val in _fields(buf):
        if field == 1:
            dims += _packed_varints(val, wire)
        elif field == 2:
            dtype_code = val
        elif field == 8:
            name = bytes(val).decode()
        elif field == 9:
            raw = bytes(val)
        elif field == 4:
            float_data.append(np.frombuffer(bytes(val), "<f4") if wire == 2 else np.frombuffer(bytes(val), "<f4"))
        elif field == 5:
            int32_data += _packed_varints(val, wire)
        elif field == 7:
            int64_data += [v - (1 << 64) if v >= 1 << 63 else v for v in _packed_varints(val, wire)]
    if dtype_code not in _DTYPES:
        raise ModelFileError(f"initializer {name!r}: unsupported data type {dtype_code}")
    dt = np.dtype(_DTYPES[dtype_code])
    count = int(np.prod(dims)) if dims else 1
    if raw is not None:
        arr = np.frombuffer(raw, dt.newbyteorder("<"))
    elif dtype_code == 1:
        arr = np.concatenate(float_data) if float_data else np.zeros(0, np.float32)
    elif dtype_code == 10:
        arr = np.array(int32_data, np.uint16).view(np.float16)
    elif dtype_code == 7:
        arr = np.array(int64_data, np.int64)
    else:
        arr = np.array(int32_data).astype(dt)
    if arr.size != count:
        raise ModelFileError(f"initializer {name!r}: {arr.size} values for shape {dims}")
    return name, arr.astype(dt.newbyteorder("="), copy=False).reshape(dims)


def read_onnx(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(initializers, metadata)`` of the main graph of an ONNX file; float16 ``X__f16`` -> float32 ``X``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file missing: {path}")
    data = memoryview(path.read_bytes())
    graph = None
    meta: dict[str, str] = {}
    try:
        for field, wire, val in _fields(data):
            if field == 7 and wire == 2:
                graph = val
            elif field == 14 and wire == 2:
                kv = {f: bytes(v).decode() for f, w, v in _fields(val) if w == 2}
                meta[kv.get(1, "")] = kv.get(2, "")
        if graph is None:
            raise ModelFileError(f"{path}: not an ONNX model (no graph)")
        inits: dict[str, np.ndarray] = {}
        for field, wire, val in _fields(graph):
            if field == 5 and wire == 2:
                name, arr = _tensor(val)
                if name.endswith("__f16"):
                    name, arr = name[:-5], arr.astype(np.float32)
                inits[name] = arr
    except (ModelFileError, UnicodeDecodeError, ValueError) as exc:
        msg = str(exc)
        raise ModelFileError(msg if msg.startswith(str(path)) else f"{path}: corrupt ONNX file ({msg})") from None
    return inits, meta
