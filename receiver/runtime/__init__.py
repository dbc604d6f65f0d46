"""Real-time decoder runtime: the shipped ONNX decoders with a compiled sample loop on one core.

    from pnsc.receiver.runtime import StreamingDecoder, DecoderBank
    dec = StreamingDecoder("plpcnet-s", group=1)          # int8 C kernel, best ISA path for this CPU
    pcm = dec.push(frame)                                 # (20,) features -> int16 (160,) two frames later
    print(dec.kernel)                                     # avx512-vnni / avx2 / generic / onnx

``PNSC_KERNEL=avx512|avx2|generic|onnx`` forces a sample-loop path (tests cover each one the CPU has).
"""
from __future__ import annotations

from .backends import KERNEL_CHOICES, PRECISIONS, KernelUnavailable, SynthState
from .model import LoadedModel, ModelFileError, locate
from .stream import DEFAULT_PRECISION, DecoderBank, StreamingDecoder

__all__ = ["StreamingDecoder", "DecoderBank", "LoadedModel", "ModelFileError", "KernelUnavailable",
           "SynthState", "DEFAULT_PRECISION", "PRECISIONS", "KERNEL_CHOICES", "locate"]
