"""One shipped decoder loaded for the runtime: manifest lookup, integrity checks, weights, frame net.

Weights come from the ONNX initializers of ``<name>.onnx`` (PyTorch names, see
``training.lpcnet.export``); the frame-rate network ``<name>.frame.onnx`` runs in onnxruntime.
A decoder with LTP taps says so in its metadata (``ltp_taps``); GRU-A's input matrix then has one
embedding-wide column block per tap between the sample embeddings and the conditioning; a voicing gate
(metadata ``ltp_gate`` > 0) makes every tap read mu-law zero in frames whose pitch correlation is below it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pnsc.receiver.reference_decoder import DecoderNotFound, find_decoder
from pnsc.shared.checksum import sha256_file

from .onnx_weights import ModelFileError as _ProtoError
from .onnx_weights import read_onnx

from pnsc.shared.constants import (CORR_INDEX, FEATURE_DIM, FRAME_SIZE, LPC_ORDER, LTP_MAX_LAG,  # noqa: E402
                                   LTP_MAX_TAPS, LTP_MIN_LAG, PERIOD_INDEX)
MU_LEVELS = 256
CONTEXT = 2  # frames of conv context each side of the frame-rate network
MAX_GRU_A = 1024
MAX_GRU_B = 64


class ModelFileError(DecoderNotFound):
    """A decoder file is missing, corrupt, fails its manifest sha256, or has an unsupported shape."""


@dataclass
class SampleWeights:
    """Sample-rate network weights (float32), as the exported loop graph uses them."""

    embed: np.ndarray  # (256, E)
    wa_ih: np.ndarray  # (3N, 3E + C)
    wa_hh: np.ndarray  # (3N, N)
    ba_ih: np.ndarray  # (3N,)
    ba_hh: np.ndarray
    wb_ih: np.ndarray  # (3NB, N + C)
    wb_hh: np.ndarray  # (3NB, NB)
    bb_ih: np.ndarray
    bb_hh: np.ndarray
    dual_w: np.ndarray  # (2, 256, NB)
    dual_b: np.ndarray  # (2, 256)
    dual_f: np.ndarray  # (2, 256)
    ltp_taps: int = 0  # lagged-excitation inputs of GRU-A (metadata ``ltp_taps``)
    ltp_gate: float = 0.0  # voicing gate of the taps (metadata ``ltp_gate``; 0: none)

    def gated(self, corr: float) -> bool:
        """True when the voicing gate silences the LTP taps of a frame with pitch correlation ``corr``
        (compared in float32, as the exported graph and the training code do)."""
        return bool(self.ltp_gate) and bool(np.float32(corr) < np.float32(self.ltp_gate))

    @property
    def sample_cols(self) -> int:
        """Columns of GRU-A's input matrix fed by embeddings: sig, pred, exc and the LTP taps."""
        return (3 + self.ltp_taps) * self.embed_dim

    @property
    def n_a(self) -> int:
        return self.wa_hh.shape[1]

    @property
    def n_b(self) -> int:
        return self.wb_hh.shape[1]

    @property
    def embed_dim(self) -> int:
        return self.embed.shape[1]

    @property
    def cond_dim(self) -> int:
        return self.wa_ih.shape[1] - self.sample_cols

    def cond_terms(self, cond: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame conditioning (C,) -> GRU-A and GRU-B input-gate terms (3N,), (3NB,), input biases included."""
        e3, n = self.sample_cols, self.n_a
        ga = self.wa_ih[:, e3:] @ cond + self.ba_ih
        gb = self.wb_ih[:, n:] @ cond + self.bb_ih
        return ga.astype(np.float32), gb.astype(np.float32)

    def embedding_tables(self) -> np.ndarray:
        """(3 + taps, 256, 3N): the mu-law embedding times each embedding block of GRU-A's input matrix
        (sig, pred, exc, then the LTP taps; LPCNet's trick: row gathers replace the input product)."""
        e = self.embed_dim
        return np.stack([self.embed @ self.wa_ih[:, k * e:(k + 1) * e].T
                         for k in range(3 + self.ltp_taps)]).astype(np.float32)


def ltp_lag(period: float) -> int:
    """A frame's pitch period feature (samples) -> the LTP taps' integer lag, clamp(floor(p + 0.5), 32, 255),
    in float32 as the exported graph and the training code compute it."""
    f = float(np.floor(np.float32(period) + np.float32(0.5)))
    return int(min(max(f, LTP_MIN_LAG), LTP_MAX_LAG)) if f == f else LTP_MIN_LAG


def metadata_taps(meta: dict, path) -> int:
    """The ``ltp_taps`` metadata of an exported sample network (0 when absent: files before LTP taps)."""
    raw = meta.get("ltp_taps", "0")
    try:
        taps = int(raw)
    except ValueError:
        raise ModelFileError(f"{path}: bad ltp_taps metadata {raw!r} (an integer 0..{LTP_MAX_TAPS})") from None
    if not (taps == 0 or (taps % 2 == 1 and 1 <= taps <= LTP_MAX_TAPS)):
        raise ModelFileError(f"{path}: unsupported ltp_taps {taps} in its metadata (0 or odd 1..{LTP_MAX_TAPS})")
    return taps


def metadata_gate(meta: dict, path, taps: int) -> float:
    """The ``ltp_gate`` metadata (0 when absent: files before the voicing gate): a float in [0, 1), 0 without taps."""
    raw = meta.get("ltp_gate", "0")
    try:
        gate = float(raw)
    except ValueError:
        gate = float("nan")
    if not (0.0 <= gate < 1.0):
        raise ModelFileError(f"{path}: bad ltp_gate metadata {raw!r} (a pitch correlation in [0, 1))")
    if gate and not taps:
        raise ModelFileError(f"{path}: its metadata gives ltp_gate {gate:g} but no LTP taps (ltp_taps=0)")
    return gate


_KEYS = {"embed": "embed.weight", "wa_ih": "gru_a.weight_ih_l0", "wa_hh": "gru_a.weight_hh_l0",
         "ba_ih": "gru_a.bias_ih_l0", "ba_hh": "gru_a.bias_hh_l0", "wb_ih": "gru_b.weight_ih_l0",
         "wb_hh": "gru_b.weight_hh_l0", "bb_ih": "gru_b.bias_ih_l0", "bb_hh": "gru_b.bias_hh_l0",
         "dual_w": "dual_fc.weight", "dual_b": "dual_fc.bias", "dual_f": "dual_fc.factor"}


def sample_weights(path: str | Path) -> SampleWeights:
    """Read and shape-check the sample-rate weights of an exported ``<name>.onnx``."""
    try:
        inits, meta = read_onnx(path)
    except _ProtoError as exc:
        raise ModelFileError(str(exc)) from None
    missing = [v for v in _KEYS.values() if v not in inits]
    if missing:
        raise ModelFileError(f"{path}: not an exported LPCNet sample network (missing {', '.join(missing)})")
    taps = metadata_taps(meta, path)
    w = SampleWeights(**{k: np.ascontiguousarray(inits[v], np.float32) for k, v in _KEYS.items()},
                      ltp_taps=taps, ltp_gate=metadata_gate(meta, path, taps))
    _check_shapes(w, path)
    return w


def _check_shapes(w: SampleWeights, path) -> None:
    n, nb, e = w.wa_hh.shape[1], w.wb_hh.shape[1], w.embed.shape[1] if w.embed.ndim == 2 else -1
    c = w.wb_ih.shape[1] - n if w.wb_ih.ndim == 2 else -1  # the conditioning width, from GRU-B's input
    want = {"embed": (MU_LEVELS, e), "wa_ih": (3 * n, w.wa_ih.shape[-1]), "wa_hh": (3 * n, n), "ba_ih": (3 * n,),
            "ba_hh": (3 * n,), "wb_ih": (3 * nb, n + c), "wb_hh": (3 * nb, nb), "bb_ih": (3 * nb,),
            "bb_hh": (3 * nb,), "dual_w": (2, MU_LEVELS, nb), "dual_b": (2, MU_LEVELS), "dual_f": (2, MU_LEVELS)}
    for k, shape in want.items():
        if getattr(w, k).shape != shape:
            raise ModelFileError(f"{path}: unsupported decoder shape: {_KEYS[k]} is {getattr(w, k).shape}, "
                                 f"the runtime expects {shape}")
    k = 3 + w.ltp_taps
    if w.wa_ih.shape[1] != k * e + c:
        extra = w.wa_ih.shape[1] - c - 3 * e
        whole = e > 0 and extra >= 0 and extra % e == 0
        found = f"{extra // e} tap blocks" if whole else "no whole number of tap blocks"
        raise ModelFileError(f"{path}: its metadata says ltp_taps={w.ltp_taps}, but gru_a.weight_ih_l0 has "
                             f"{w.wa_ih.shape[1]} input columns ({found}; {k * e + c} expected): "
                             f"re-export the decoder")
    if not (1 <= n <= MAX_GRU_A and 1 <= nb <= MAX_GRU_B and e >= 1 and c >= 1):
        raise ModelFileError(f"{path}: unsupported decoder shape: GRU-A {n} (1..{MAX_GRU_A}), "
                             f"GRU-B {nb} (1..{MAX_GRU_B}), embedding {e}, conditioning {c}")
    for k in want:
        if not np.all(np.isfinite(getattr(w, k))):
            raise ModelFileError(f"{path}: corrupt weights ({_KEYS[k]} has non-finite values)")


def _frame_session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise ModelFileError(f"{path}: corrupt ONNX file ({str(exc).splitlines()[0][:200]})") from None


class FrameNet:
    """The frame-rate network on a 5-frame window (two frames of context each side) -> (C,) conditioning."""

    def __init__(self, path: Path, cond_dim: int):
        self.session = _frame_session(path)
        self.cond_dim = cond_dim
        inp = self.session.get_inputs()
        if len(inp) != 1 or inp[0].name != "features":
            raise ModelFileError(f"{path}: not an exported LPCNet frame-rate network (inputs {[i.name for i in inp]})")
        probe = self.run(np.zeros((2 * CONTEXT + 1, FEATURE_DIM), np.float32))
        if probe.shape != (cond_dim,):
            raise ModelFileError(f"{path}: frame-rate network gives {probe.shape} conditioning, "
                                 f"the sample network takes ({cond_dim},)")

    def run(self, window: np.ndarray) -> np.ndarray:
        return self.session.run(["cond"], {"features": window[None]})[0][0, -1]

    def run_sequence(self, padded: np.ndarray) -> np.ndarray:
        """(T+4, 20) edge-padded features -> (T, C)."""
        return self.session.run(["cond"], {"features": padded[None]})[0][0]


@dataclass
class ModelFiles:
    name: str
    family: str
    group: int | None
    frame: Path
    sample: Path
    serves_as: str | None = None  # a personalized slot served by this generic baseline (fallback_decoders.py)


def locate(family: str, group: int | None, models_dir: str | Path | None = None, verify: bool = True) -> ModelFiles:
    """Manifest entry of a decoder; with ``verify`` the files' sha256 must match ``models/manifest.json``."""
    if models_dir is None:
        from pnsc.shared.paths import models_dir as _md

        models_dir = _md()
    e = find_decoder(Path(models_dir), family, group)
    if verify:
        for kind, p in (("frame", e.frame), ("sample", e.sample)):
            want = (e.sha256 or {}).get(kind)
            if want and sha256_file(p) != want:
                raise ModelFileError(f"{p}: sha256 does not match models/manifest.json (corrupt or replaced file)")
    return ModelFiles(e.name, family, e.group, e.frame, e.sample, e.serves_as)


class LoadedModel:
    """A decoder's frame net + sample weights, ready for any number of streams (stateless itself).

    ``gru_a_layout`` auto (default) / dense / sparse: GRU-A's recurrent product in the C loop (auto: block-sparse
    when the matrix is, see ``sparse.py``).  ``prune_gru_a`` (SPEED TESTS ONLY, default None): zero all but this
    fraction of GRU-A's recurrent 16x1 blocks in memory (``sparse.prune_gru_a``); the decoder is not retrained,
    so its output is not meant to be listened to."""

    def __init__(self, files: ModelFiles, *, gru_a_layout: str = "auto", prune_gru_a: float | None = None):
        from .sparse import GRU_A_LAYOUTS, pruned_weights

        if gru_a_layout not in GRU_A_LAYOUTS:
            raise ValueError(f"unknown GRU-A layout {gru_a_layout!r} (one of {', '.join(GRU_A_LAYOUTS)})")
        self.files = files
        self.name = files.name
        self.serves_as = files.serves_as
        self.family = files.family
        self.group = files.group
        self.gru_a_layout = gru_a_layout
        self.weights = sample_weights(files.sample)
        if prune_gru_a is not None:
            self.weights = pruned_weights(self.weights, prune_gru_a)
        self.frame_net = FrameNet(files.frame, self.weights.cond_dim)
        self._backends: dict = {}

    @property
    def ltp_taps(self) -> int:
        """LTP taps of the sample network (0: LPCNet as published)."""
        return self.weights.ltp_taps

    @property
    def ltp_gate(self) -> float:
        """Voicing gate of the LTP taps (0: none)."""
        return self.weights.ltp_gate

    @property
    def size(self) -> tuple[int, int]:
        """(GRU-A, GRU-B) sizes: decoders of equal size can share recurrent state."""
        return self.weights.n_a, self.weights.n_b

    def backend(self, precision: str, kernel: str | None):
        """The sample-loop engine for (precision, kernel), built once per model."""
        from .backends import make_backend

        key = (precision, kernel)
        if key not in self._backends:
            self._backends[key] = make_backend(self, precision, kernel)
        return self._backends[key]
