"""Real-time decoder runtime: the shipped ONNX decoders with a compiled sample loop on one core.

    from pnsc.receiver.runtime import StreamingDecoder, DecoderBank
    dec = StreamingDecoder("plpcnet-s", group=1)          # int8 C kernel, best ISA path for this CPU
    pcm = dec.push(frame)                                 # (20,) features -> int16 (160,) two frames later
    print(dec.kernel)                                     # avx512-vnni / avx2 / generic / onnx

``PNSC_KERNEL=avx512|avx2|generic|onnx`` forces a sample-loop path (tests cover each one the CPU has);
a path the CPU lacks falls back to the best it has, with a warning.

- Streaming: ``push`` one (20,) dequantized feature frame per 10 ms; the audio of a frame comes out two
  pushes later (the frame-rate net's lookahead); ``flush`` ends an utterance; ``reset`` forgets all.
- Concealment: push extrapolated feature frames as if received; all state carries across.
- Speaker-group changes: ``switch(family, group)`` between frames (state carried, one crossfaded frame;
  see ``stream.py``); ``DecoderBank("s")`` preloads every decoder of a size so a switch loads nothing.
- Precision: fp32 (default; follows the onnxruntime reference loop choice for choice, see ``verify.py``) or
  int8 (per-row weight scales on the GRU-A-state products; twice as fast, slightly worse since round 7).
- Weights come from the ONNX initializers at load time (``onnx_weights.py``), files checked against
  ``models/manifest.json`` (sha256); errors are ``DecoderNotFound`` / ``ModelFileError`` with one line.
- LTP decoders (metadata ``ltp_taps`` > 0: GRU-A also sees the excitations one pitch lag back) run on every
  path; the excitation history lives in the stream state, each frame's lag comes from its pitch period.
  A voicing gate (metadata ``ltp_gate`` > 0) silences the taps (mu-law zero) of frames whose pitch correlation
  is below it; the C loop then runs that frame without per-sample tap work.
- Block-sparse GRU-A (``sparse.py``): a decoder whose GRU-A recurrent matrix has at most 40 % of its 16x1 blocks
  non-zero (LPCNet-style sparse training) runs a block-sparse fp32 product, bit for bit the dense result, found
  at load (int8 stays dense).  ``pnsc bench decoder --prune-gru-a 0.1`` times it on artificially pruned weights.
- Speed: ``pnsc bench decoder`` (LTP cost: ``scripts/bench_ltp_runtime.py``).  Quality cost of int8: ``scripts/runtime_quality.py``.
"""
from __future__ import annotations

from .backends import KERNEL_CHOICES, PRECISIONS, KernelUnavailable, SynthState
from .model import LoadedModel, ModelFileError, locate
from .stream import DEFAULT_PRECISION, DecoderBank, StreamingDecoder

__all__ = ["StreamingDecoder", "DecoderBank", "LoadedModel", "ModelFileError", "KernelUnavailable",
           "SynthState", "DEFAULT_PRECISION", "PRECISIONS", "KERNEL_CHOICES", "locate"]
