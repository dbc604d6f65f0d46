"""The decoders' sampling rule and its probability floor, the same on every decode path.

LPCNet draws each mu-law level from the softmax of the sample network's logits, sharpened by the pitch
correlation ``c`` (``boost = 1 + max(0, 1.5 c - 0.5)``), then subtracts a small constant from every
probability, clamps at zero and renormalises (xiph LPCNet's sampler).  Subtracting the floor removes the long
tail of improbable levels that an imperfect model leaves everywhere, which sounds as hiss.

``pdf_floor`` is a runtime parameter of every decoder (``StreamingDecoder``, ``DecoderBank``,
``ReferenceDecoder``, ``pnsc decode --pdf-floor``); its default is ``pnsc.shared.constants.PDF_FLOOR`` and
0 turns the floor off (plain softmax sampling).  xiph LPCNet subtracts 0.002; on our decoders 0.0005 scored
better on validation speakers (PESQ-WB, STOI, ESTOI; ViSQOL for the baseline) and 0 clearly worse
(``scripts/tune_sampling.py --floors``).  Valid floors lie in ``[0, 1/256)``: the largest of 256
probabilities is at least 1/256, so at least one level always survives.

Paths: the C kernel takes the floor per call (``Net.frame(..., pdf_floor=)``); the exported ONNX loop graph
carries it as a constant of ``Relu(Sub(Softmax(..), floor))``, which :func:`loop_graph_with_floor` rewrites
in place in the file's bytes (same size, nothing else changes) for onnxruntime.  :func:`floored_pdf` and
:func:`sample_level` are the numpy statement of the rule, in the graph's float32 arithmetic order.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from pnsc.shared.constants import PDF_FLOOR

MU_LEVELS = 256
MAX_PDF_FLOOR = 1.0 / MU_LEVELS  # exclusive


class GraphFloorError(Exception):
    """An ONNX loop graph without the probability-floor pattern the runtime can set."""


def check_pdf_floor(value: float) -> float:
    """``value`` as a float if it is a valid floor (finite, ``0 <= value < 1/256``), else ValueError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"pdf_floor must be a number, got {value!r}") from None
    if not (math.isfinite(v) and 0.0 <= v < MAX_PDF_FLOOR):
        raise ValueError(f"pdf_floor must be in [0, 1/256) = [0, {MAX_PDF_FLOOR:.6f}), got {value!r}")
    return v


def floored_pdf(logits: np.ndarray, boost: float, pdf_floor: float = PDF_FLOOR) -> np.ndarray:
    """(256,) logits -> unnormalised floored probabilities ``max(softmax(boost * logits) - pdf_floor, 0)``
    (float32, as the graph and the C kernel compute them; they sum to 1 - the removed mass)."""
    x = np.asarray(logits, np.float32) * np.float32(boost)
    e = np.exp(x - x.max())
    p = e * (np.float32(1.0) / e.sum(dtype=np.float32))
    return np.maximum(p - np.float32(check_pdf_floor(pdf_floor)), np.float32(0.0)).astype(np.float32)


def sample_level(p: np.ndarray, u: float) -> int:
    """Inverse CDF of floored probabilities at a uniform draw ``u`` in [0, 1): the number of cumulative
    sums below ``u * sum(p)`` (at most 255), the graph's ``count(cdf < thr)``."""
    p = np.asarray(p, np.float32)
    thr = np.float32(u) * p.sum(dtype=np.float32)
    return int(min(MU_LEVELS - 1, int(np.count_nonzero(np.cumsum(p, dtype=np.float32) < thr))))


# -- the floor inside an exported loop graph (protobuf wire format, no ``onnx`` package)

def _fields(data: bytes, start: int, end: int):
    """(field, wire, value or (start, end) of a length-delimited / fixed payload) of one message."""
    from pnsc.receiver.runtime.onnx_weights import _varint

    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(data, pos)
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            val, pos = (pos, pos + n), pos + n
        elif wire == 2:
            ln, pos = _varint(data, pos)
            val, pos = (pos, pos + ln), pos + ln
        else:
            raise GraphFloorError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise GraphFloorError("truncated protobuf message")
        yield field, wire, val


def _text(data: bytes, span: tuple[int, int]) -> str:
    return data[span[0]:span[1]].decode()


def _nodes_and_inits(data: bytes, graph: tuple[int, int]):
    nodes, inits = [], {}
    for f, w, v in _fields(data, *graph):
        if f == 1 and w == 2:  # NodeProto: input 1, output 2, op_type 4, attribute 5
            node = {"in": [], "out": [], "op": "", "attrs": []}
            for nf, nw, nv in _fields(data, *v):
                if nw != 2:
                    continue
                if nf == 1:
                    node["in"].append(_text(data, nv))
                elif nf == 2:
                    node["out"].append(_text(data, nv))
                elif nf == 4:
                    node["op"] = _text(data, nv)
                elif nf == 5:
                    node["attrs"].append(nv)
            nodes.append(node)
        elif f == 5 and w == 2:  # TensorProto: data_type 2, name 8, raw_data 9, float_data 4
            name, dtype, span = "", 0, None
            for tf, tw, tv in _fields(data, *v):
                if tf == 8 and tw == 2:
                    name = _text(data, tv)
                elif tf == 2 and tw == 0:
                    dtype = tv
                elif (tf == 9 and tw == 2) or (tf == 4 and tw in (2, 5)):
                    span = tv
            inits[name] = (dtype, span)
    return nodes, inits


def _floor_span(data: bytes, path: Path) -> tuple[int, int]:
    """Byte range of the float32 floor constant in the Loop body's ``Relu(Sub(Softmax, floor))``."""
    from pnsc.receiver.runtime.onnx_weights import ModelFileError

    try:
        return _find_floor(data, path)
    except GraphFloorError as exc:
        msg = str(exc)
        raise GraphFloorError(msg if msg.startswith(str(path)) else f"{path}: corrupt ONNX file ({msg})") from None
    except (ModelFileError, UnicodeDecodeError) as exc:
        raise GraphFloorError(f"{path}: corrupt ONNX file ({exc})") from None


def _find_floor(data: bytes, path: Path) -> tuple[int, int]:
    graph = next((v for f, w, v in _fields(data, 0, len(data)) if f == 7 and w == 2), None)
    if graph is None:
        raise GraphFloorError(f"{path}: not an ONNX model (no graph)")
    nodes, _ = _nodes_and_inits(data, graph)
    for loop in (n for n in nodes if n["op"] == "Loop"):
        for attr in loop["attrs"]:
            body = name = None
            for af, aw, av in _fields(data, *attr):
                if af == 1 and aw == 2:
                    name = _text(data, av)
                elif af == 6 and aw == 2:
                    body = av
            if name != "body" or body is None:
                continue
            bnodes, inits = _nodes_and_inits(data, body)
            made_by = {o: n for n in bnodes for o in n["out"]}
            for relu in (n for n in bnodes if n["op"] == "Relu" and n["in"]):
                sub = made_by.get(relu["in"][0])
                if not (sub and sub["op"] == "Sub" and len(sub["in"]) == 2):
                    continue
                src = made_by.get(sub["in"][0])
                dtype, span = inits.get(sub["in"][1], (0, None))
                if src and src["op"] == "Softmax" and dtype == 1 and span and span[1] - span[0] == 4:
                    return span
    raise GraphFloorError(f"{path}: the sample loop graph has no probability floor Relu(Sub(Softmax, c)) "
                          "(re-export the decoder with training.lpcnet.export)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GraphFloorError(f"{path}: cannot read ({exc.strerror or exc})") from None


def loop_graph_floor(path: str | Path) -> float:
    """The probability floor baked into an exported loop graph ``<name>.onnx`` (float32 value)."""
    path = Path(path)
    data = _read(path)
    s, e = _floor_span(data, path)
    return struct.unpack("<f", data[s:e])[0]


def loop_graph_with_floor(path: str | Path, pdf_floor: float) -> bytes:
    """The loop graph's bytes with its floor constant set to ``pdf_floor`` (an InferenceSession accepts them)."""
    path = Path(path)
    data = bytearray(_read(path))
    s, e = _floor_span(bytes(data), path)
    data[s:e] = struct.pack("<f", check_pdf_floor(pdf_floor))
    return bytes(data)


def same_floor(a: float, b: float) -> bool:
    """Equal as the float32 the kernels use."""
    return np.float32(a) == np.float32(b)
