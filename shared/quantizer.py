"""The 1.6 kb/s quantizer: 4 frames of features <-> one 64-bit packet.

Per 40 ms superframe (frames 0..3), as LPCNet's 1.6 kb/s mode:
- frame 3: c0 scalar (7 bits) + c1..c17 three-stage VQ (3 x 10 bits, M-best search);
- frame 1: residual against the average of the previous and current frame 3 (12-bit VQ + sign);
- frames 0 and 2: one of 8 interpolation weight pairs (3 bits);
- pitch: superframe period on a log scale (6 bits, 0 = unvoiced) + linear slope (3 bits);
  correlation level (2 bits).
Encoder and decoder both keep the previous superframe's quantized frame 3, so decoding is
deterministic and identical on both ends.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bitstream import FIELD_NAMES, pack_array, unpack_array
from .constants import (
    CORR_INDEX,
    FEATURE_DIM,
    FRAMES_PER_PACKET,
    NB_CEPS,
    PACKET_BYTES,
    PERIOD_INDEX,
    PITCH_MAX,
    PITCH_MIN,
    VOICED_CORR,
)
from .paths import models_dir

CODEBOOK_FILE = "codebooks-v1.npz"
CODEBOOK_VERSION = 1
MBEST = 5
PITCH_STEPS_PER_OCTAVE = 21
PITCH_MOD_STEP = 0.015  # log2(period) change per frame for one step of pitch_mod
# (w0, w2): frame0 = w0*prev3 + (1-w0)*q1 ; frame2 = w2*q1 + (1-w2)*q3
INTERP_WEIGHTS = np.array(
    [[0.5, 0.5], [0.0, 0.0], [0.0, 0.5], [0.0, 1.0], [0.5, 0.0], [0.5, 1.0], [1.0, 0.5], [1.0, 1.0]]
)
_FRAME_POS = np.arange(FRAMES_PER_PACKET) - (FRAMES_PER_PACKET - 1) / 2.0  # -1.5 .. 1.5


class CodebookError(Exception):
    """The codebook file is missing or does not match this codec version."""


@dataclass(frozen=True)
class Codebooks:
    c0_min: float
    c0_step: float
    vq: np.ndarray  # (3, 1024, 17)
    mid: np.ndarray  # (4096, 18)
    corr_levels: np.ndarray  # (4,) increasing
    info: dict = field(default_factory=dict)

    @property
    def corr_thresholds(self) -> np.ndarray:
        return (self.corr_levels[1:] + self.corr_levels[:-1]) / 2.0

    def save(self, path: Path) -> None:
        np.savez(
            path,
            version=np.int32(CODEBOOK_VERSION),
            c0_min=np.float64(self.c0_min),
            c0_step=np.float64(self.c0_step),
            vq=self.vq.astype(np.float32),
            mid=self.mid.astype(np.float32),
            corr_levels=self.corr_levels.astype(np.float32),
            info=np.array(json.dumps(self.info)),
        )


def load_codebooks(path: str | Path | None = None) -> Codebooks:
    """Load the shipped codebooks (``models/codebooks-v1.npz``) or the given file."""
    path = Path(path) if path else models_dir() / CODEBOOK_FILE
    if not path.is_file():
        raise CodebookError(f"codebook file not found: {path} (train it with scripts/train_codebooks.py)")
    with np.load(path) as z:
        version = int(z["version"])
        if version != CODEBOOK_VERSION:
            raise CodebookError(f"{path}: codebook version {version}, this codec needs {CODEBOOK_VERSION}")
        cb = Codebooks(
            c0_min=float(z["c0_min"]),
            c0_step=float(z["c0_step"]),
            vq=z["vq"].astype(np.float64),
            mid=z["mid"].astype(np.float64),
            corr_levels=z["corr_levels"].astype(np.float64),
            info=json.loads(str(z["info"])),
        )
    if cb.vq.shape != (3, 1024, NB_CEPS - 1) or cb.mid.shape != (4096, NB_CEPS) or cb.corr_levels.shape != (4,):
        raise CodebookError(f"{path}: codebook shapes do not match the 64-bit packet layout")
    return cb


def _sqdist(x: np.ndarray, cb: np.ndarray, cb_norm: np.ndarray) -> np.ndarray:
    """Squared distances ``(n, K)`` between rows of ``x`` and codewords."""
    return np.sum(x * x, axis=-1, keepdims=True) - 2.0 * x @ cb.T + cb_norm


class _Tables:
    """Codebooks plus precomputed norms, shared by encoder and decoder."""

    def __init__(self, cb: Codebooks) -> None:
        self.cb = cb
        self.vq_norm = np.sum(cb.vq**2, axis=-1)
        self.mid_norm = np.sum(cb.mid**2, axis=-1)
        self.corr_thresholds = cb.corr_thresholds

    def c0_value(self, c0_id: np.ndarray | int) -> np.ndarray:
        return self.cb.c0_min + np.asarray(c0_id) * self.cb.c0_step

    def frame3(self, c0_id: int, vq_ids: tuple[int, int, int]) -> np.ndarray:
        out = np.empty(NB_CEPS)
        out[0] = self.c0_value(c0_id)
        out[1:] = sum(self.cb.vq[s, i] for s, i in enumerate(vq_ids))
        return out


def periods_from_code(pitch: int, mod: int) -> np.ndarray:
    """Decoded per-frame pitch periods of one superframe (unvoiced -> PITCH_MIN)."""
    if pitch == 0:
        return np.full(FRAMES_PER_PACKET, float(PITCH_MIN))
    log_p = np.log2(PITCH_MIN) + pitch / PITCH_STEPS_PER_OCTAVE + (mod - 3) * PITCH_MOD_STEP * _FRAME_POS
    return np.clip(2.0**log_p, PITCH_MIN, PITCH_MAX)


# Fit the superframe's pitch line to its voiced frames only (True) or to all four (False). The voiced-only
# fit codes voicing onsets/offsets far better (gross pitch errors there 18 -> 12.5 %, LibriSpeech validation,
# scripts/pitch_accuracy.py). On since round 6: decoders trained from then on saw examples coded with it
# (round-6 BL-S decodes validation speech with it DNSMOS OVRL +0.07 better than with the all-frame fit), and
# decoders adapted to the all-frame fit decode no differently with it (docs/figures/round6/).
PITCH_LINE_VOICED_ONLY = True


def pitch_code(periods: np.ndarray, corrs: np.ndarray, voiced_only: bool | None = None) -> tuple[int, int]:
    """One superframe's 4 frame periods and correlations -> ``(pitch, pitch_mod)`` codes.

    Unvoiced (code 0) when the mean correlation is below VOICED_CORR. Otherwise a line
    ``log2(period) = centre + slope * position`` is fitted by least squares to all four frames, or with
    ``voiced_only`` (default PITCH_LINE_VOICED_ONLY) to the voiced frames only (correlation >= VOICED_CORR;
    all four if none is): an unvoiced frame's period is whatever lag its correlation happened to peak at
    (or PITCH_MIN), and letting it into the fit moves the pitch of voicing onsets/offsets off (gross errors
    in 18-25 % of such frames against 6-7 % unquantized)."""
    periods, corrs = np.asarray(periods, np.float64), np.asarray(corrs, np.float64)
    if corrs.mean() < VOICED_CORR:
        return 0, 3
    log_p = np.log2(np.clip(periods, PITCH_MIN, PITCH_MAX))
    use = corrs >= VOICED_CORR
    if not (PITCH_LINE_VOICED_ONLY if voiced_only is None else voiced_only) or not use.any():
        use[:] = True
    # Least-squares line in closed form; over all four frames the positions are centred already, so this is
    # exactly the encoder's original rule (mean log period, projection on the positions).
    pos, lp = _FRAME_POS[use], log_p[use]
    pc = pos - pos.mean()
    slope = float(pc @ lp / (pc @ pc)) if use.sum() >= 2 else 0.0
    intercept = lp.mean() - slope * pos.mean()
    centre = PITCH_STEPS_PER_OCTAVE * (intercept - np.log2(PITCH_MIN))
    pitch = int(np.clip(np.rint(centre), 1, 63))
    mod = int(np.clip(np.rint(slope / PITCH_MOD_STEP) + 3, 0, 7))
    return pitch, mod


class PacketEncoder:
    """Stateful encoder: features of whole superframes -> 8-byte packets."""

    def __init__(self, codebooks: Codebooks | None = None) -> None:
        self._t = _Tables(codebooks or load_codebooks())
        self._prev3: np.ndarray | None = None

    def encode(self, features: np.ndarray) -> np.ndarray:
        """``(4k, 20)`` features -> ``(k, 8)`` uint8 packets."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM or len(features) % FRAMES_PER_PACKET:
            raise ValueError(f"features must be (4k, {FEATURE_DIM}), got {features.shape}")
        k = len(features) // FRAMES_PER_PACKET
        fields = {name: np.zeros(k, dtype=np.int64) for name in FIELD_NAMES}
        for s in range(k):
            for name, value in self._encode_superframe(features[s * 4 : s * 4 + 4]).items():
                fields[name][s] = value
        return pack_array(fields) if k else np.zeros((0, PACKET_BYTES), dtype=np.uint8)

    def _encode_superframe(self, f: np.ndarray) -> dict[str, int]:
        t, cb = self._t, self._t.cb
        ceps = f[:, :NB_CEPS]
        out: dict[str, int] = {}

        out["c0"] = int(np.clip(np.rint((ceps[3, 0] - cb.c0_min) / cb.c0_step), 0, 127))
        out["vq0"], out["vq1"], out["vq2"] = self._mbest_vq(ceps[3, 1:])
        q3 = t.frame3(out["c0"], (out["vq0"], out["vq1"], out["vq2"]))
        prev3 = q3 if self._prev3 is None else self._prev3

        target = ceps[1] - 0.5 * (prev3 + q3)
        dots = cb.mid @ target
        err = t.mid_norm - 2.0 * np.abs(dots)  # best sign per codeword
        out["mid"] = int(np.argmin(err))
        out["mid_sign"] = int(dots[out["mid"]] < 0)
        q1 = 0.5 * (prev3 + q3) + (1 - 2 * out["mid_sign"]) * cb.mid[out["mid"]]

        w0, w2 = INTERP_WEIGHTS[:, :1], INTERP_WEIGHTS[:, 1:]
        e0 = np.sum((ceps[0] - (w0 * prev3 + (1 - w0) * q1)) ** 2, axis=1)
        e2 = np.sum((ceps[2] - (w2 * q1 + (1 - w2) * q3)) ** 2, axis=1)
        out["interp"] = int(np.argmin(e0 + e2))

        corr = f[:, CORR_INDEX]
        out["corr"] = int(np.searchsorted(t.corr_thresholds, corr.mean()))
        out["pitch"], out["pitch_mod"] = pitch_code(f[:, PERIOD_INDEX], corr)
        self._prev3 = q3
        return out

    def _mbest_vq(self, x: np.ndarray) -> tuple[int, int, int]:
        """Three-stage VQ keeping the MBEST best partial paths after each stage."""
        cb, norms = self._t.cb.vq, self._t.vq_norm
        paths: list[tuple[int, ...]] = [()]
        residuals = x[None, :]
        for stage in range(3):
            d = _sqdist(residuals, cb[stage], norms[stage])  # (paths, 1024)
            d = d.ravel()
            top = np.argpartition(d, MBEST - 1)[:MBEST]
            flat = top[np.lexsort((top, d[top]))]  # by distance, ties by index: deterministic
            rows, cols = np.divmod(flat, cb.shape[1])
            paths = [paths[r] + (int(c),) for r, c in zip(rows, cols)]
            residuals = residuals[rows] - cb[stage][cols]
        return paths[0]  # type: ignore[return-value]


class PacketDecoder:
    """Stateful decoder: 8-byte packets -> quantized features (4 frames each)."""

    def __init__(self, codebooks: Codebooks | None = None) -> None:
        self._t = _Tables(codebooks or load_codebooks())
        self._prev3: np.ndarray | None = None

    def decode(self, packets: np.ndarray) -> np.ndarray:
        """``(k, 8)`` uint8 packets -> ``(4k, 20)`` float32 features."""
        fields = unpack_array(np.asarray(packets, dtype=np.uint8).reshape(-1, PACKET_BYTES))
        k = len(fields["c0"])
        out = np.zeros((k * FRAMES_PER_PACKET, FEATURE_DIM), dtype=np.float32)
        for s in range(k):
            out[s * 4 : s * 4 + 4] = self._decode_superframe({n: int(v[s]) for n, v in fields.items()})
        return out

    def set_reference(self, frame3_ceps: np.ndarray | None) -> None:
        """Set the cepstrum (18,) that frames 0..2 of the next packet interpolate from (normally the
        previous packet's frame 3; after a lost packet, the receiver's concealed frame)."""
        self._prev3 = None if frame3_ceps is None else np.asarray(frame3_ceps, np.float64)[:NB_CEPS].copy()

    def _decode_superframe(self, p: dict[str, int]) -> np.ndarray:
        t, cb = self._t, self._t.cb
        q3 = t.frame3(p["c0"], (p["vq0"], p["vq1"], p["vq2"]))
        prev3 = q3 if self._prev3 is None else self._prev3
        q1 = 0.5 * (prev3 + q3) + (1 - 2 * p["mid_sign"]) * cb.mid[p["mid"]]
        w0, w2 = INTERP_WEIGHTS[p["interp"]]
        f = np.empty((FRAMES_PER_PACKET, FEATURE_DIM))
        f[0, :NB_CEPS] = w0 * prev3 + (1 - w0) * q1
        f[1, :NB_CEPS] = q1
        f[2, :NB_CEPS] = w2 * q1 + (1 - w2) * q3
        f[3, :NB_CEPS] = q3
        f[:, PERIOD_INDEX] = periods_from_code(p["pitch"], p["pitch_mod"])
        f[:, CORR_INDEX] = cb.corr_levels[p["corr"]]
        self._prev3 = q3
        return f


def quantize_features(features: np.ndarray, codebooks: Codebooks | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode a whole utterance and decode it again: ``(packets (k,8), dequantized (4k,20))``."""
    cb = codebooks or load_codebooks()
    packets = PacketEncoder(cb).encode(features)
    return packets, PacketDecoder(cb).decode(packets)
