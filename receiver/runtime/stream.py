"""Streaming decoder: one dequantized feature frame in, 160 samples out, state carried across calls.

Frame timing: the frame-rate network looks two frames ahead (its two k=3 convolutions), so the
audio of frame ``t`` comes out of the ``push`` of frame ``t + 2`` (``lookahead_frames``).  The first
frame is edge-padded on the left (as the reference decoder pads a file), ``flush`` pads on the right.
Given the same features and seed, push-all-then-flush equals ``ReferenceDecoder.decode`` up to float
rounding (the frame net runs on 5-frame windows instead of the whole file).

Decoder switching (``switch``): the feature window, the LPC history (last 16 samples), the previous
excitation, the de-emphasis memory and the random stream carry over unchanged, so the waveform stays
continuous.  Between decoders of one size (the personalized decoders of a family and its baseline are
all fine-tuned from one model) the GRU states carry over too; across sizes the new decoder's GRU
states start at zero.  Either way the first frame after a switch is decoded by both decoders from the
same state and random draws, and crossfaded (linear over the 160 samples, before de-emphasis), so
no discontinuity or level jump reaches the output; the new decoder continues from its own state.

Decoders with LTP taps: the state also holds the excitations drawn so far (``SynthState.past``, kept across
pushes, flushes and switches, cleared by ``reset``), and each frame's lag comes from the pitch period of the
frame being synthesized (the centre of its feature window), so a concealed (extrapolated) frame pushed like
a received one brings its own lag; a gated decoder (``ltp_gate``) decides from the same frame's pitch
correlation whether its taps read the lagged excitations or mu-law zero.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pnsc.receiver.sampling import check_pdf_floor
from pnsc.shared.constants import LPC_ORDER, PDF_FLOOR, PREEMPHASIS
from pnsc.shared.dsp import deemphasize
from pnsc.shared.lpc import lpc_from_cepstrum as _lpc_numpy

from .backends import KernelUnavailable, SynthState, requested_kernel
if TYPE_CHECKING:
    from pnsc.receiver.postfilter import FormantPostfilter
from .model import CONTEXT, CORR_INDEX, FEATURE_DIM, FRAME_SIZE, PERIOD_INDEX, LoadedModel, locate

# fp32 since round 7: int8 costs the fine-tuned decoders measurably (held-out, PLPCNet-S STOI -0.010, ViSQOL
# -0.11; PLPCNet-L DNSMOS OVRL -0.15, docs/figures/round7/heldout_fp32_vs_int8.md) and fp32 still decodes
# 14x (S) / 6x (L) faster than real time on one AVX-512 core; int8 stays a choice for slow machines.
DEFAULT_PRECISION = "fp32"
FAMILIES_BY_SIZE = {"s": ("plpcnet-s", "lpcnet-bl-s"), "l": ("plpcnet-l", "lpcnet-bl-l")}
_XFADE = ((np.arange(FRAME_SIZE, dtype=np.float32) + 0.5) / FRAME_SIZE).astype(np.float32)


try:  # per-frame LPC and de-emphasis in C; numpy when the extension is missing (the onnx fallback)
    from .ckernel import extension as _ext

    _ext()
    from .fastdsp import deemphasize_int16 as _deemph
    from .fastdsp import lpc_from_cepstrum as _lpc
except KernelUnavailable:
    def _lpc(ceps: np.ndarray) -> np.ndarray:
        return _lpc_numpy(ceps[None, :18])[0]

    def _deemph(y: np.ndarray, mem: float) -> tuple[np.ndarray, float]:
        y = np.nan_to_num(np.asarray(y, np.float32), nan=0.0, posinf=32767.0, neginf=-32768.0)
        x, mem = deemphasize(y, mem)
        return np.clip(np.round(x), -32768, 32767).astype(np.int16), mem


def _key(family: str, group: int | None) -> tuple[str, int | None]:
    return family, (int(group) if family.startswith("plpcnet") and group is not None else None)


class StreamingDecoder:
    """Real-time LPCNet/PLPCNet decoding of a stream of feature frames (one thread).

    ``family`` plpcnet-s / plpcnet-l (needs ``group``) or lpcnet-bl-s / lpcnet-bl-l; ``precision``
    int8 (default) or fp32; ``kernel`` None = best for this CPU (or ``$PNSC_KERNEL``), else avx512 /
    avx2 / generic (the C kernel) or onnx (the exported Loop graph in onnxruntime, slow).  ``seed``
    seeds the sampling noise (numpy PCG64, 160 draws per frame, the reference decoder's stream).
    ``pdf_floor`` (default ``PDF_FLOOR`` = 0.0005, 0 = off, < 1/256) is subtracted from every level's
    probability before each draw (LPCNet's sampler, ``pnsc.receiver.sampling``); every kernel path applies it
    alike.  It may be changed between frames (attribute ``pdf_floor``).
    ``postfilter`` (opt-in, default None = the plain output): a ``pnsc.receiver.postfilter.FormantPostfilter``
    (one per decoder: it keeps state) run on each decoded frame with that frame's predictor; ``reset`` resets
    it, ``switch`` keeps it running (it filters the continuous output).
    """

    lookahead_frames: int = CONTEXT

    def __init__(self, family: str, group: int | None = None, *, precision: str = DEFAULT_PRECISION,
                 seed: int = 0, models_dir: str | Path | None = None, kernel: str | None = None,
                 bank: "DecoderBank | None" = None, pdf_floor: float = PDF_FLOOR,
                 postfilter: "FormantPostfilter | None" = None):
        self.precision = precision
        self.postfilter = postfilter  # opt-in; None (the default) leaves the output exactly as it was
        self.pdf_floor = pdf_floor
        self.seed = seed
        self.models_dir = models_dir
        self._kernel_req = requested_kernel(kernel)
        self._bank = bank
        self._set_model(self._load(family, group))
        self.reset()

    @property
    def pdf_floor(self) -> float:
        """Probability floor of the sampling (see the class docstring)."""
        return self._pdf_floor

    @pdf_floor.setter
    def pdf_floor(self, value: float) -> None:
        self._pdf_floor = check_pdf_floor(value)

    # -- model handling
    def _load(self, family: str, group: int | None) -> LoadedModel:
        if self._bank is not None:
            m = self._bank.model(family, group)
            if m is not None:
                return m
        return LoadedModel(locate(family, group, self.models_dir))

    def _set_model(self, model: LoadedModel) -> None:
        self.model = model
        self.backend = model.backend(self.precision, self._kernel_req)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def serves_as(self) -> str | None:
        """The generic baseline whose weights serve this personalized slot (None: the slot's own decoder)."""
        return self.model.serves_as

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def group(self) -> int | None:
        return self.model.group

    @property
    def kernel(self) -> str:
        """The sample-loop path actually running: avx512-vnni / avx2 / generic (C) or onnx."""
        return self.backend.kernel

    # -- state
    def reset(self) -> None:
        """Forget everything: features, recurrent state, de-emphasis memory; restart the random stream."""
        self._rng = np.random.default_rng(self.seed)
        self._state = SynthState.zeros(*self.model.size)
        self._deemph = 0.0
        self._lpc = np.zeros(LPC_ORDER, np.float32)  # predictor of the frame being finished (for the postfilter)
        if self.postfilter is not None:
            self.postfilter.reset()
        self._window: list[np.ndarray] = []
        self._pushed = 0  # frames pushed since the last reset / flush
        self._done = 0  # of those, frames synthesized
        self._pending_switch: LoadedModel | None = None
        self._old_state: SynthState | None = None

    def switch(self, family: str, group: int | None = None) -> None:
        """Decode later frames with another decoder, without a click (see the module docstring)."""
        if _key(family, group) == _key(self.family, self.group) and self._pending_switch is None:
            return
        new = self._load(family, group)
        if self._pending_switch is None:  # the outgoing decoder and its state, for the crossfade frame
            self._pending_switch, self._old_state = self.model, self._state.copy()
        self._set_model(new)
        if (self._state.ha.size, self._state.hb.size) != new.size:  # another size: its GRU states start at zero
            same = (self._old_state.ha.size, self._old_state.hb.size) == new.size
            self._state.ha = self._old_state.ha.copy() if same else np.zeros(new.size[0], np.float32)
            self._state.hb = self._old_state.hb.copy() if same else np.zeros(new.size[1], np.float32)

    # -- streaming
    def push(self, frame: np.ndarray) -> np.ndarray:
        """One (20,) float32 dequantized feature frame -> int16 (160,) audio of the frame pushed
        ``lookahead_frames`` earlier (empty int16 array for the first pushes)."""
        f = np.asarray(frame, np.float32).reshape(-1)
        if f.shape != (FEATURE_DIM,):
            raise ValueError(f"a feature frame has {FEATURE_DIM} values, got shape {np.shape(frame)}")
        if not np.all(np.isfinite(f)):
            raise ValueError("feature frame has non-finite values")
        if not self._window:
            self._window = [f] * CONTEXT
        self._window.append(f)
        self._pushed += 1
        return self._advance()

    def flush(self) -> np.ndarray:
        """Decode the frames still held for lookahead (right edge padded with the last frame); int16.
        The next push starts a new feature sequence; recurrent and de-emphasis state continue."""
        out = []
        while self._done < self._pushed:
            self._window.append(self._window[-1])
            out.append(self._advance())
        self._window, self._pushed, self._done = [], 0, 0
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    def decode(self, features: np.ndarray) -> np.ndarray:
        """Convenience: push every frame of (T, 20) features, then flush -> int16 (T*160,)."""
        feats = np.asarray(features, np.float32)
        if feats.ndim != 2 or feats.shape[1] != FEATURE_DIM:
            raise ValueError(f"features must be (T, {FEATURE_DIM}), got {feats.shape}")
        out = [self.push(f) for f in feats]
        out.append(self.flush())
        return np.concatenate(out)

    def _advance(self) -> np.ndarray:
        if len(self._window) < 2 * CONTEXT + 1:
            return np.zeros(0, np.int16)
        self._window = self._window[-(2 * CONTEXT + 1):]
        window = np.stack(self._window)
        y = self._synth(window)
        self._done += 1
        return self._finish(y)

    def _synth(self, window: np.ndarray) -> np.ndarray:
        center = window[CONTEXT]
        lpc = self._lpc = _lpc(center)
        corr = float(center[CORR_INDEX])
        uniforms = self._rng.random(FRAME_SIZE, dtype=np.float32)
        old = self._pending_switch
        if old is None:
            return self._run(self.model, self.backend, window, lpc, corr, uniforms, self._state, self._pdf_floor)
        self._pending_switch = None
        old_backend = old.backend(self.precision, self._kernel_req)
        old_state = self._old_state
        y_old = self._run(old, old_backend, window, lpc, corr, uniforms, old_state, self._pdf_floor)
        y_new = self._run(self.model, self.backend, window, lpc, corr, uniforms, self._state, self._pdf_floor)
        return (1.0 - _XFADE) * y_old + _XFADE * y_new

    @staticmethod
    def _run(model, backend, window, lpc, corr, uniforms, state, pdf_floor) -> np.ndarray:
        if getattr(backend, "c_frame_net", False):
            return backend.run_window(window, lpc, corr, uniforms, state, pdf_floor=pdf_floor)
        cond = model.frame_net.run(window)
        return backend.run_frame(cond, lpc, corr, uniforms, state, pdf_floor=pdf_floor,
                                 period=float(window[CONTEXT, PERIOD_INDEX]))

    def _finish(self, y: np.ndarray) -> np.ndarray:
        pcm, self._deemph = _deemph(y, self._deemph)
        if self.postfilter is None:
            return pcm
        # on the de-emphasised int16 output, with the frame's own predictor (see pnsc.receiver.postfilter for
        # why that domain); this is exactly what scripts/tune_formant_postfilter.py measured offline
        z = self.postfilter.process(pcm.astype(np.float64), self._lpc)
        return np.clip(np.round(z), -32768, 32767).astype(np.int16)


class DecoderBank:
    """Every decoder of one size loaded up front (``size`` "s" or "l"): the personalized decoders of all
    groups and the generic baseline, so that ``switch`` never loads a file during a call.

        bank = DecoderBank("s")
        dec = bank.get("plpcnet-s", 2)      # a StreamingDecoder drawing its models from the bank
        dec.switch("plpcnet-s", 0)          # instant

    ``postfilter`` (opt-in, default None = the plain output): a formant postfilter spec ``(g_n, g_d, mu)``
    (as ``pnsc.receiver.postfilter.parse_postfilter`` returns it); each stream ``get`` returns runs its own
    ``FormantPostfilter(g_n, g_d, mu)`` (the filter keeps state, so streams never share one).
    """

    def __init__(self, size: str = "s", *, precision: str = DEFAULT_PRECISION,
                 models_dir: str | Path | None = None, kernel: str | None = None, groups=None,
                 pdf_floor: float = PDF_FLOOR, postfilter: tuple[float, float, float] | None = None):
        from pnsc.receiver.postfilter import check_spec as check_postfilter_spec
        from pnsc.receiver.reference_decoder import read_manifest
        from pnsc.shared.paths import models_dir as _md

        size = size.lower()
        if size not in FAMILIES_BY_SIZE:
            raise ValueError(f"decoder size must be one of {sorted(FAMILIES_BY_SIZE)}, got {size!r}")
        self.size = size
        self.precision = precision
        self.pdf_floor = check_pdf_floor(pdf_floor)  # of the streams ``get`` makes
        self.postfilter = check_postfilter_spec(postfilter)  # likewise (a spec; one filter per stream)
        self.models_dir = Path(models_dir) if models_dir is not None else _md()
        self.kernel_request = requested_kernel(kernel)
        self._models: dict[tuple[str, int | None], LoadedModel] = {}
        for m in read_manifest(self.models_dir):
            fam = m.get("family")
            if m.get("kind") != "decoder" or fam not in FAMILIES_BY_SIZE[size]:
                continue
            g = m.get("group")
            g = g if isinstance(g, int) else None
            if groups is not None and g is not None and g not in groups:
                continue
            model = LoadedModel(locate(fam, g, self.models_dir))
            model.backend(precision, self.kernel_request)
            self._models[_key(fam, g)] = model
        if not self._models:
            raise FileNotFoundError(f"no {size.upper()} decoders in {self.models_dir}/manifest.json")

    def keys(self) -> list[tuple[str, int | None]]:
        return sorted(self._models, key=lambda k: (k[0], -1 if k[1] is None else k[1]))

    def model(self, family: str, group: int | None) -> LoadedModel | None:
        return self._models.get(_key(family, group))

    def get(self, family: str, group: int | None = None, *, seed: int = 0) -> StreamingDecoder:
        """A new stream on a bank decoder (KeyError-free: unknown decoders raise DecoderNotFound)."""
        from pnsc.receiver.reference_decoder import DecoderNotFound

        if self.model(family, group) is None:
            raise DecoderNotFound(f"decoder {family} group {group} is not in this {self.size.upper()} bank "
                                  f"(have {self.keys()})")
        pf = None
        if self.postfilter is not None:
            from pnsc.receiver.postfilter import FormantPostfilter

            pf = FormantPostfilter(*self.postfilter)
        return StreamingDecoder(family, group, precision=self.precision, seed=seed, models_dir=self.models_dir,
                                kernel=self.kernel_request, bank=self, pdf_floor=self.pdf_floor, postfilter=pf)
