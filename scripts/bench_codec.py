#!/usr/bin/env python3
"""Codec-core benchmark: analysis + quantization speed (fraction of real time, one core),
cepstral distortion of the quantizer and pitch-code accuracy on real speech.

Usage: OMP_NUM_THREADS=1 python scripts/bench_codec.py [--corpus DIR] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from pnsc.shared.audio import load_audio  # noqa: E402
from pnsc.shared.constants import CORR_INDEX, NB_CEPS, PERIOD_INDEX, SAMPLE_RATE  # noqa: E402
from pnsc.shared.features import extract_features  # noqa: E402
from pnsc.shared.quantizer import PacketDecoder, PacketEncoder, VOICED_CORR, load_codebooks  # noqa: E402
from pnsc.training.corpus.librispeech import scan_corpus  # noqa: E402
from pnsc.shared.paths import LIBRISPEECH_EXCERPTS, shared_path  # noqa: E402

DEFAULT_CORPUS = shared_path(LIBRISPEECH_EXCERPTS)  # ../shared or $PNSC_SHARED_DIR


def measure(paths: list[Path], cb) -> dict:
    t_feat = t_enc = t_dec = seconds = 0.0
    dists, pitch_ok, voiced_frames, frames = [], 0, 0, 0
    for path in paths:
        pcm = load_audio(path, quiet=True)
        seconds += len(pcm) / SAMPLE_RATE
        t0 = time.perf_counter()
        feats = extract_features(pcm)
        t1 = time.perf_counter()
        packets = PacketEncoder(cb).encode(feats)
        t2 = time.perf_counter()
        deq = PacketDecoder(cb).decode(packets)
        t3 = time.perf_counter()
        t_feat, t_enc, t_dec = t_feat + t1 - t0, t_enc + t2 - t1, t_dec + t3 - t2

        active = feats[:, 0] > np.max(feats[:, 0]) - 5.0  # frames within 50 dB of the loudest
        dists.append(10.0 * np.sqrt(np.mean((feats[active, :NB_CEPS] - deq[active, :NB_CEPS]) ** 2, axis=1)))
        # Pitch: superframes whose analysis says voiced; per frame, decoded period within one
        # code step (1/21 octave) of the analysed period.
        sf_voiced = np.repeat(feats[:, CORR_INDEX].reshape(-1, 4).mean(1) >= VOICED_CORR, 4)
        frames += len(feats)
        v = sf_voiced
        ratio = np.abs(np.log2(deq[v, PERIOD_INDEX] / feats[v, PERIOD_INDEX]))
        pitch_ok += int(np.sum(ratio <= 1.0 / 21.0))
        voiced_frames += int(np.sum(v))
    d = np.concatenate(dists)
    return {
        "files": len(paths),
        "audio_seconds": round(seconds, 1),
        "analysis_rtf": round(t_feat / seconds, 5),
        "encode_rtf": round(t_enc / seconds, 5),
        "analysis_plus_encode_rtf": round((t_feat + t_enc) / seconds, 5),
        "decode_rtf": round(t_dec / seconds, 5),
        "cepstral_distortion_db_mean": round(float(d.mean()), 3),
        "cepstral_distortion_db_median": round(float(np.median(d)), 3),
        "cepstral_distortion_db_p95": round(float(np.percentile(d, 95)), 3),
        "voiced_frame_fraction": round(voiced_frames / frames, 4),
        "pitch_code_accuracy": round(pitch_ok / max(voiced_frames, 1), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, default=0, help="at most this many files per subset")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cb = load_codebooks()
    results = {}
    for subset in ("train-clean-100", "test-other"):
        paths = [u.path for u in scan_corpus(args.corpus, [subset])]
        results[subset] = measure(paths[: args.limit] if args.limit else paths, cb)
        print(subset, json.dumps(results[subset], indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
