"""The compiled sample loop (extension ``pnsc.receiver.runtime._lpcnet``): weight preparation and dispatch.

Weights are re-laid out once at load time for the kernel: row blocks of 64 outputs, each block
column-interleaved (float32: 64 values per input column; int8: 64 rows x 4 columns per 256 bytes,
the operand order of AVX-512 VNNI ``vpdpbusd``).  int8 applies to the two matrices that take the GRU-A state
as input (GRU-A's recurrent matrix, about 90 % of the multiply-adds, and GRU-B's input matrix), with one
scale per row; their input (the GRU-A state, in (-1, 1)) is quantized to 1/127 steps once per sample, as
LPCNet does.  Everything else (tables, GRU-B recurrence, dual FC, sampling) stays float32.
fp32 keeps float32 arithmetic throughout; GRU-A's recurrent matrix is stored as float16 when its values
are exactly float16 (the shipped ONNX files store float16 weights), which halves its memory traffic and
changes no result.
LTP decoders (``ltp_taps`` > 0) add one folded table per tap; the kernel keeps no state of its own: the
stream's :class:`SynthState` carries the excitation history (``past``) and each frame passes its lag.  A frame
the voicing gate silences (``ltp_gate`` > 0, pitch correlation below it) passes lag 0 instead: the kernel then
adds the taps' constant mu-law-zero rows to the frame's conditioning term once and runs the loop without taps
(still recording the frame's draws in ``past``); ungated frames and gate-less decoders run as before.
GRU-A's recurrent matrix runs block-sparse (16x1 blocks, ``sparse.py``) when at most ``SPARSE_MAX_DENSITY`` of its
blocks are non-zero (fp32 only: int8 stays dense); the layout is ``CBackend.gru_a_layout``.
"""
from __future__ import annotations

import numpy as np

from pnsc.shared.constants import PDF_FLOOR

from .backends import KernelUnavailable, SynthState, require_period, sampling_boost
from .model import CONTEXT, FRAME_SIZE, PERIOD_INDEX, ModelFileError, ltp_lag
from .sparse import GRU_A_LAYOUTS, SPARSE_BLOCK, SPARSE_MAX_DENSITY, block_density, pack_block_sparse

BLOCK = 64
_ISA_NAMES = {"avx512": "avx512-vnni", "avx2": "avx2", "generic": "generic"}

try:
    from . import _lpcnet  # type: ignore[attr-defined]
except ImportError as _exc:  # pragma: no cover - exercised only on a broken install
    _lpcnet = None
    _IMPORT_ERROR = str(_exc)
else:
    _IMPORT_ERROR = ""


def extension():
    """The compiled module, or KernelUnavailable with the reason."""
    if _lpcnet is None:
        raise KernelUnavailable(f"the C extension pnsc.receiver.runtime._lpcnet is not built ({_IMPORT_ERROR}); "
                                "reinstall with `pip install -e .` (needs a C compiler and Python headers)")
    return _lpcnet


def cpu_kernels() -> list[str]:
    """Compiled kernel paths this CPU can run, best first (e.g. ['avx512-vnni', 'avx2', 'generic'])."""
    return list(extension().available())


def pick_kernel(request: str | None) -> str:
    """Kernel path name for a request (None = best).  A path this CPU cannot run falls back to the best
    one it can, with a warning on stderr naming both."""
    have = cpu_kernels()
    if request is None:
        return have[0]
    name = _ISA_NAMES[request]
    if name not in have:
        import sys

        print(f"pnsc: warning: kernel {request} needs CPU instructions this machine lacks "
              f"(available here: {', '.join(have)}); running {have[0]}", file=sys.stderr)
        return have[0]
    return name


def pad_rows(w: np.ndarray, block: int = BLOCK) -> np.ndarray:
    r = -w.shape[0] % block
    return np.concatenate([w, np.zeros((r,) + w.shape[1:], w.dtype)]) if r else w


def block_f32(w: np.ndarray) -> np.ndarray:
    """(R, C) -> (ceil(R/64), C, 64) float32: for each row block, 64 outputs contiguous per input column."""
    w = pad_rows(np.asarray(w, np.float32))
    rb = w.shape[0] // BLOCK
    return np.ascontiguousarray(w.reshape(rb, BLOCK, w.shape[1]).transpose(0, 2, 1))


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per row: w ~ q * scale, |q| <= 127."""
    w = np.asarray(w, np.float32)
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def block_q8(q: np.ndarray, tiles: bool = True) -> np.ndarray:
    """(R, C) int8 -> (ceil(R/64), ceil(C/4), 64, 4): 256-byte tiles of 64 rows x 4 columns (the SIMD
    paths); ``tiles=False``: padded row-major (ceil(R/64)*64, ceil(C/4)*4) (the generic path)."""
    q = pad_rows(q)
    c4 = -q.shape[1] % 4
    if c4:
        q = np.concatenate([q, np.zeros((q.shape[0], c4), np.int8)], axis=1)
    if not tiles:
        return np.ascontiguousarray(q)
    rb, cg = q.shape[0] // BLOCK, q.shape[1] // 4
    return np.ascontiguousarray(q.reshape(rb, BLOCK, cg, 4).transpose(0, 2, 1, 3))


def choose_layout(w_hh: np.ndarray, precision: str, request: str = "auto") -> tuple[str, float]:
    """(GRU-A recurrent layout "dense" / "sparse", its 16x1 block density) for a request auto / dense / sparse:
    auto is sparse for fp32 at block density <= SPARSE_MAX_DENSITY (and GRU-A size divisible by 16)."""
    if request not in GRU_A_LAYOUTS:
        raise ValueError(f"unknown GRU-A layout {request!r} (one of {', '.join(GRU_A_LAYOUTS)})")
    n = w_hh.shape[1]
    density = block_density(w_hh) if n % SPARSE_BLOCK == 0 else 1.0
    if request == "sparse" and precision != "fp32":
        raise ValueError("the block-sparse GRU-A kernel is fp32 only (int8 keeps the dense product)")
    if request == "sparse" and n % SPARSE_BLOCK:
        raise ValueError(f"the block-sparse GRU-A kernel needs a GRU-A size divisible by {SPARSE_BLOCK}, got {n}")
    if request == "auto":
        request = "sparse" if precision == "fp32" and n % SPARSE_BLOCK == 0 and density <= SPARSE_MAX_DENSITY \
            else "dense"
    return request, density


class CBackend:
    """Sample loop in C for one loaded model (precision fp32 or int8) on one ISA path; ``gru_a_layout``
    auto (default: ``model.gru_a_layout`` if it has one) / dense / sparse picks GRU-A's recurrent product."""

    def __init__(self, model, precision: str, kernel: str | None, gru_a_layout: str | None = None):
        ext = extension()
        self.kernel = pick_kernel(kernel)
        self.precision = precision
        w = model.weights
        self.weights = w
        self.n_a, self.n_b = w.n_a, w.n_b
        n = w.n_a
        request = gru_a_layout if gru_a_layout is not None else getattr(model, "gru_a_layout", "auto")
        self.gru_a_layout, self.gru_a_density = choose_layout(w.wa_hh, precision, request)
        kw = dict(
            n_a=n, n_b=w.n_b, kernel=self.kernel, int8=precision == "int8", taps=w.ltp_taps,
            tables=np.ascontiguousarray(w.embedding_tables()),
            ba_hh=w.ba_hh, wb_hh=block_f32(w.wb_hh), bb_hh=w.bb_hh,
            wd=block_f32(w.dual_w.reshape(2 * 256, w.n_b)), bd=w.dual_b.reshape(-1), fd=w.dual_f.reshape(-1),
            sp_idx=None, sp_w=None)
        none_f, none_i = np.zeros(0, np.float32), np.zeros(0, np.int32)
        if precision == "int8":
            for key, mat in (("wa", w.wa_hh), ("wb_in", w.wb_ih[:, :n])):
                q, scale = quantize_rows(mat)
                kw[key] = block_q8(q, tiles=self.kernel != "generic")
                kw[f"{key[:2]}_scale"] = pad_rows(scale / 127.0)
                kw[f"{key[:2]}_rowsum"] = pad_rows(q.astype(np.int32).sum(axis=1)).astype(np.int32)
        elif self.gru_a_layout == "sparse":
            sp_idx, sp_w = pack_block_sparse(w.wa_hh)
            kw.update(wa=none_f, sp_idx=sp_idx, sp_w=sp_w, wb_in=block_f32(w.wb_ih[:, :n]), wa_scale=none_f,
                      wa_rowsum=none_i, wb_scale=none_f, wb_rowsum=none_i)
        else:
            wa = block_f32(w.wa_hh)
            if self.kernel != "generic" and np.array_equal(wa.astype(np.float16).astype(np.float32), wa):
                wa = wa.astype(np.float16)  # the file's float16 values exactly: half the memory traffic
            kw.update(wa=wa, wb_in=block_f32(w.wb_ih[:, :n]), wa_scale=none_f, wa_rowsum=none_i,
                      wb_scale=none_f, wb_rowsum=none_i)
        kw = {k: (np.ascontiguousarray(v, np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
              for k, v in kw.items()}
        try:
            self.net = ext.Net(**kw)
        except ValueError as exc:
            raise ModelFileError(f"{model.files.sample}: {exc}") from None
        self.c_frame_net = self._setup_frame_net(model)
        self.ltp_taps = w.ltp_taps
        self._ga = np.empty(3 * w.n_a, np.float32)
        self._gb = np.empty(3 * w.n_b, np.float32)

    def _setup_frame_net(self, model) -> bool:
        """Load the frame-rate network into the C kernel too (one window costs ~5 us there against ~20-60 us in
        onnxruntime plus the conditioning products in numpy).  Used only if it reproduces onnxruntime on
        probe windows; otherwise the stream keeps onnxruntime for it."""
        from .onnx_weights import ModelFileError as ProtoError
        from .onnx_weights import read_onnx

        w = model.weights
        try:
            inits, _ = read_onnx(model.files.frame)
            w1, w2 = inits["frame_net.conv1.weight"], inits["frame_net.conv2.weight"]
            consts = sorted((k for k, v in inits.items() if not k.startswith("frame_net.") and v.shape == (20,)),
                            key=lambda k: int(k.rsplit("_", 1)[-1]) if k.rsplit("_", 1)[-1].isdigit() else 1 << 30)
            off, scale = (np.ascontiguousarray(inits[k], np.float32) for k in consts[:2])
            c, p = w1.shape[0], inits["frame_net.pitch_embedding.weight"].shape[1]
            e3 = w.sample_cols
            self.net.set_frame_net(
                c, p, off=off, scale=scale,
                pemb=np.ascontiguousarray(inits["frame_net.pitch_embedding.weight"], np.float32),
                c1=block_f32(w1.transpose(0, 2, 1).reshape(c, -1)), c1b=inits["frame_net.conv1.bias"],
                c2=block_f32(w2.transpose(0, 2, 1).reshape(c, -1)), c2b=inits["frame_net.conv2.bias"],
                f1=block_f32(inits["frame_net.fc1.weight"]), f1b=inits["frame_net.fc1.bias"],
                f2=block_f32(inits["frame_net.fc2.weight"]), f2b=inits["frame_net.fc2.bias"],
                wac=block_f32(w.wa_ih[:, e3:]), bac=w.ba_ih, wbc=block_f32(w.wb_ih[:, w.n_a:]), bbc=w.bb_ih)
        except (KeyError, ValueError, IndexError, ProtoError):
            return False
        rng = np.random.default_rng(1)
        ga, gb = np.empty(3 * w.n_a, np.float32), np.empty(3 * w.n_b, np.float32)
        for _ in range(4):
            win = rng.normal(0, 2, (5, 20)).astype(np.float32)
            win[:, 18] = rng.uniform(20, 270, 5)
            win[:, 19] = rng.uniform(0, 1, 5)
            self.net.cond(win, ga, gb)
            ref_a, ref_b = w.cond_terms(model.frame_net.run(win))
            if not (np.allclose(ga, ref_a, atol=1e-4, rtol=1e-4) and np.allclose(gb, ref_b, atol=1e-4, rtol=1e-4)):
                return False
        return True

    def _ltp(self, st: SynthState, period: float | None, corr: float) -> dict:
        """The frame's LTP arguments of ``Net.frame`` (none for a decoder without taps; lag 0: gated)."""
        if not self.ltp_taps:
            return {}
        lag = ltp_lag(require_period(period))
        return {"past": st.past, "lag": 0 if self.weights.gated(corr) else lag}

    def run_window(self, window: np.ndarray, lpc: np.ndarray, corr: float, uniforms: np.ndarray,
                   st: SynthState, pdf_floor: float = PDF_FLOOR) -> np.ndarray:
        """Frame-rate network on the (5, 20) window and the 160-sample loop, both in C (the LTP lag from the
        pitch period of the window's centre frame; ``corr``, its pitch correlation, also drives the voicing gate)."""
        ga, gb = np.empty_like(self._ga), np.empty_like(self._gb)  # per call: streams may share this backend
        self.net.cond(np.ascontiguousarray(window, np.float32), ga, gb)
        out = np.empty(FRAME_SIZE, np.float32)
        self.net.frame(ga, gb, lpc, float(sampling_boost(corr)), uniforms, st.ha, st.hb, st.hist,
                       st.exc, out, pdf_floor=pdf_floor, **self._ltp(st, window[CONTEXT, PERIOD_INDEX], corr))
        return out

    def run_frame(self, cond: np.ndarray, lpc: np.ndarray, corr: float, uniforms: np.ndarray,
                  st: SynthState, force: np.ndarray | None = None, pdf_floor: float = PDF_FLOOR,
                  period: float | None = None) -> np.ndarray:
        """The 160-sample loop for conditioning ``cond``; ``period``: the frame's pitch period feature
        (needed by LTP decoders, ignored by the others); ``corr``: its raw pitch correlation (sampling
        temperature, and the LTP voicing gate)."""
        ga, gb = self.weights.cond_terms(np.asarray(cond, np.float32))
        out = np.empty(FRAME_SIZE, np.float32)
        self.net.frame(ga, gb, np.ascontiguousarray(lpc, np.float32), float(sampling_boost(corr)),
                       np.ascontiguousarray(uniforms, np.float32), st.ha, st.hb, st.hist, st.exc, out,
                       None if force is None else np.ascontiguousarray(force, np.float32), pdf_floor=pdf_floor,
                       **self._ltp(st, period, corr))
        return out
