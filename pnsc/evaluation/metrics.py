"""Quality metrics of a decoded signal against its reference (16 kHz mono float in [-1, 1]).

Intrusive (after delay compensation, :mod:`.align`): wide-band PESQ (ITU-T P.862.2, PyPI ``pesq``),
STOI and extended STOI (``pystoi``), ViSQOL v3 speech mode (``visqol-python``, lattice mapping when
``ai-edge-litert`` is installed).  Non-intrusive: DNSMOS P.835 SIG / BAK / OVRL (``speechmos``).
Speaker similarity: cosine of resemblyzer d-vectors (GE2E encoder shipped inside the ``resemblyzer``
wheel).  Every model ships inside its wheel: nothing is downloaded at run time.

    scorer = Scorer()
    scores = scorer.score(ref, deg)   # {'pesq_wb': ..., 'stoi': ..., 'lag': ..., ...}
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .align import align
from .errors import EvalError, require_module

from pnsc.shared.constants import SAMPLE_RATE  # noqa: E402
MIN_SECONDS = 1.0  # shorter signals are refused (PESQ and STOI need several seconds to be meaningful)
SILENCE_DBFS = -60.0  # a signal whose peak is below this is silent

INTRUSIVE = ("pesq_wb", "stoi", "estoi", "visqol")
DNSMOS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
SPEAKER = ("spk_sim",)
ALL_METRICS = INTRUSIVE + DNSMOS + SPEAKER
# Value of identical signals. ViSQOL's ceiling depends on the signal (its similarity NSIM is then 1,
# the MOS mapping gives about 4.4-4.7), DNSMOS has none.
CEILING = {"pesq_wb": 4.644, "stoi": 1.0, "estoi": 1.0, "spk_sim": 1.0}
LABELS = {"pesq_wb": "PESQ-WB", "stoi": "STOI", "estoi": "ESTOI", "visqol": "ViSQOL",
          "dnsmos_sig": "DNSMOS SIG", "dnsmos_bak": "DNSMOS BAK", "dnsmos_ovrl": "DNSMOS OVRL",
          "spk_sim": "speaker sim."}


def check_signal(x: np.ndarray, name: str = "signal") -> np.ndarray:
    """Return ``x`` as 1-D float64 in [-1, 1] scale (integer PCM, e.g. a decoder's int16, is divided by
    32768), or raise :class:`EvalError` if it is empty, too short or silent."""
    a = np.asarray(x)
    x = a.astype(np.float64) / 32768.0 if np.issubdtype(a.dtype, np.integer) else np.asarray(a, dtype=np.float64)
    if x.ndim != 1:
        raise EvalError(f"{name}: expected mono audio (1-D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise EvalError(f"{name}: contains NaN or infinite samples")
    seconds = len(x) / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise EvalError(f"{name}: too short to score ({seconds:.2f} s; at least {MIN_SECONDS:.1f} s needed)")
    peak = float(np.max(np.abs(x)))
    if peak <= 10 ** (SILENCE_DBFS / 20):
        level = 20 * math.log10(peak) if peak > 0 else float("-inf")
        raise EvalError(f"{name}: silent (peak {level:.1f} dBFS, below {SILENCE_DBFS:.0f} dBFS)")
    return x


class Scorer:
    """Computes the metrics; each tool is loaded on first use (and its absence reported then)."""

    def __init__(self, metrics: tuple[str, ...] = ALL_METRICS):
        unknown = [m for m in metrics if m not in ALL_METRICS]
        if unknown:
            raise EvalError(f"unknown metric(s) {unknown}; known: {list(ALL_METRICS)}")
        self.metrics = tuple(metrics)
        self._visqol = None
        self.visqol_mapping = None
        self._voice_encoder = None
        self._dnsmos = None

    def check_tools(self) -> None:
        """Load every tool now, so a missing package is reported before any long work."""
        if {"pesq_wb"} & set(self.metrics):
            require_module("pesq", "pesq", "PESQ")
        if {"stoi", "estoi"} & set(self.metrics):
            require_module("pystoi", "pystoi", "STOI")
        if "visqol" in self.metrics:
            self._visqol_api()
        if set(DNSMOS) & set(self.metrics):
            self._dnsmos_run()
        if "spk_sim" in self.metrics:
            self._encoder()

    # -- tools ----------------------------------------------------------------------------
    def _visqol_api(self):
        if self._visqol is None:
            vq = require_module("visqol", "visqol-python[lattice]", "ViSQOL")
            try:
                import ai_edge_litert  # noqa: F401

                lattice = True
            except ImportError:
                lattice = False
            api = vq.VisqolApi()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                api.create(mode="speech", use_lattice_model=lattice)
            self._visqol = api
            self.visqol_mapping = "lattice" if lattice else "polynomial (install visqol-python[lattice])"
        return self._visqol

    def _dnsmos_run(self):
        if self._dnsmos is None:
            self._dnsmos = require_module("speechmos.dnsmos", "speechmos", "DNSMOS").run
        return self._dnsmos

    def _encoder(self):
        if self._voice_encoder is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rz = require_module("resemblyzer", "resemblyzer", "speaker similarity")
                self._voice_encoder = (rz.VoiceEncoder("cpu", verbose=False), rz.preprocess_wav)
        return self._voice_encoder

    # -- metrics ---------------------------------------------------------------------------
    def intrusive(self, ref: np.ndarray, deg: np.ndarray) -> dict[str, float]:
        """Intrusive metrics of aligned, equal-length ``ref`` and ``deg``."""
        out: dict[str, float] = {}
        if "pesq_wb" in self.metrics:
            pesq = require_module("pesq", "pesq", "PESQ")
            try:
                out["pesq_wb"] = float(pesq.pesq(SAMPLE_RATE, ref, deg, "wb"))
            except Exception as exc:  # e.g. NoUtterancesError on a signal PESQ finds no speech in
                raise EvalError(f"PESQ failed: {exc}") from None
        if {"stoi", "estoi"} & set(self.metrics):
            stoi = require_module("pystoi", "pystoi", "STOI").stoi
            if "stoi" in self.metrics:
                out["stoi"] = float(stoi(ref, deg, SAMPLE_RATE, extended=False))
            if "estoi" in self.metrics:
                out["estoi"] = float(stoi(ref, deg, SAMPLE_RATE, extended=True))
        if "visqol" in self.metrics:
            out["visqol"] = self.visqol(ref, deg)[0]
        return out

    def visqol(self, ref: np.ndarray, deg: np.ndarray) -> tuple[float, float]:
        """ViSQOL speech mode: (MOS-LQO, mean patch similarity NSIM)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = self._visqol_api().measure_from_arrays(np.asarray(ref, np.float64), np.asarray(deg, np.float64),
                                                       SAMPLE_RATE)
        return float(r.moslqo), float(r.vnsim)

    def dnsmos(self, x: np.ndarray) -> dict[str, float]:
        """DNSMOS P.835 (non-intrusive) of one signal."""
        if not set(DNSMOS) & set(self.metrics):
            return {}
        r = self._dnsmos_run()(np.clip(np.asarray(x, np.float32), -1.0, 1.0), SAMPLE_RATE)
        return {"dnsmos_sig": float(r["sig_mos"]), "dnsmos_bak": float(r["bak_mos"]),
                "dnsmos_ovrl": float(r["ovrl_mos"])}

    def embedding(self, x: np.ndarray) -> np.ndarray | None:
        """L2-normalized resemblyzer speaker embedding (None if speaker similarity is not scored)."""
        if "spk_sim" not in self.metrics:
            return None
        enc, prep = self._encoder()
        wav = prep(np.asarray(x, np.float32), source_sr=SAMPLE_RATE)
        if len(wav) < SAMPLE_RATE // 2:
            raise EvalError("speaker similarity: less than 0.5 s of voiced audio after voice activity detection")
        e = enc.embed_utterance(wav)
        return e / (np.linalg.norm(e) + 1e-12)

    def score(self, ref: np.ndarray, deg: np.ndarray, ref_embedding: np.ndarray | None = None,
              max_lag: int = 8000) -> dict[str, float]:
        """Every selected metric of ``deg`` against ``ref``, after delay compensation (key ``lag``)."""
        ref = check_signal(ref, "reference")
        deg = check_signal(deg, "decoded signal")
        r, d, a = align(ref, deg, max_lag)
        check_signal(d, "decoded signal after alignment")
        out: dict[str, float] = {"lag": float(a.lag)}
        out.update(self.intrusive(r, d))
        out.update(self.dnsmos(deg))
        if "spk_sim" in self.metrics:
            e_ref = ref_embedding if ref_embedding is not None else self.embedding(ref)
            out["spk_sim"] = float(np.dot(e_ref, self.embedding(deg)))
        return out
