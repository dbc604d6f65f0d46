"""Speed of the decoder runtime on real coded speech: real-time factor and per-frame latency.

Features come from the bundled ``samples/*.flac`` run through the codec core (analysis + 1.6 kb/s
quantization + dequantization), repeated until the requested duration.  Each ``push`` (frame net +
160-sample loop + de-emphasis, everything the receiver does per 10 ms frame) is timed on one thread,
by the wall clock and by the thread's CPU time.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .model import FRAME_SIZE, LoadedModel, locate
from .stream import StreamingDecoder

from pnsc.shared.constants import SAMPLE_RATE  # noqa: E402
FAMILIES = ("plpcnet-s", "lpcnet-bl-s", "plpcnet-l", "lpcnet-bl-l")


def coded_speech_features(seconds: float, files: list[Path] | None = None) -> np.ndarray:
    """(T, 20) dequantized features of at least ``seconds`` of the bundled speech (cycled)."""
    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.paths import PACKAGE_ROOT
    from pnsc.shared.quantizer import quantize_features

    if files is None:
        files = sorted((PACKAGE_ROOT / "samples").glob("*.flac"))
    if not files:
        raise FileNotFoundError(f"no speech files for the benchmark under {PACKAGE_ROOT / 'samples'}")
    parts = [quantize_features(extract_features(load_audio(f, quiet=True)))[1] for f in files]
    feats = np.concatenate(parts)
    need = int(np.ceil(seconds * SAMPLE_RATE / FRAME_SIZE))
    reps = -(-need // len(feats))
    return np.concatenate([feats] * reps)[:max(need, 1)]


def bench_stream(dec: StreamingDecoder, features: np.ndarray) -> dict:
    """Push every frame through ``dec`` (then flush), timing each call: wall clock, and this thread's CPU
    time (on a shared machine the wall clock also counts time the thread waited for a core)."""
    n = features.shape[0] + 1
    wall, cpu = np.empty(n), np.empty(n)
    n_out = 0
    for i in range(n):
        c0, t0 = time.thread_time(), time.perf_counter()
        n_out += (dec.push(features[i]) if i < n - 1 else dec.flush()).size
        wall[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
    audio = n_out / SAMPLE_RATE
    per_frame = wall[dec.lookahead_frames:-1] * 1e3  # pushes that produced a frame
    per_frame_cpu = cpu[dec.lookahead_frames:-1] * 1e3
    return {"decoder": dec.name, "precision": dec.precision, "kernel": dec.kernel, "audio_s": round(audio, 2),
            "rtf": float(wall.sum() / audio), "p50_ms": float(np.percentile(per_frame, 50)),
            "p99_ms": float(np.percentile(per_frame, 99)), "max_ms": float(per_frame.max()),
            "cpu_rtf": float(cpu.sum() / audio), "cpu_p99_ms": float(np.percentile(per_frame_cpu, 99))}


class _ModelSource:
    """Hands StreamingDecoder one decoder loaded with a GRU-A layout and optional pruning (a bank's ``model``)."""

    def __init__(self, family: str, group: int | None, density: float | None, layout: str):
        self._model = LoadedModel(locate(family, group), gru_a_layout=layout, prune_gru_a=density)

    def model(self, family: str, group: int | None) -> LoadedModel:
        return self._model


def run_benchmark(seconds: float = 30.0, families=FAMILIES, precisions=("fp32", "int8"), group: int = 1,
                  kernel: str | None = None, progress=None, prune_gru_a: float | None = None,
                  gru_a_layout: str = "auto") -> list[dict]:
    """One row per (family, precision).  ``prune_gru_a`` (a SPEED TEST on artificially pruned weights, never
    for quality): keep only this fraction of GRU-A's recurrent 16x1 blocks (``sparse.prune_gru_a``);
    ``gru_a_layout`` auto / dense / sparse forces GRU-A's recurrent product (auto: sparse when sparse enough)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    feats = coded_speech_features(seconds)
    rows = []
    for fam in families:
        for prec in precisions:
            g = group if fam.startswith("plpcnet") else None
            src = None if prune_gru_a is None and gru_a_layout == "auto" else \
                _ModelSource(fam, g, prune_gru_a, gru_a_layout)
            dec = StreamingDecoder(fam, g, precision=prec, kernel=kernel, bank=src)  # type: ignore[arg-type]
            bench_stream(dec, feats[:50])  # warm caches and code paths
            dec.reset()
            be = dec.backend
            row = {"family": fam, **bench_stream(dec, feats),
                   "gru_a_layout": getattr(be, "gru_a_layout", "dense"),
                   "gru_a_density": round(float(getattr(be, "gru_a_density", 1.0)), 4),
                   "pruned": prune_gru_a is not None}
            rows.append(row)
            if progress:
                progress(row)
    return rows
