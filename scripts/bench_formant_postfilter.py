#!/usr/bin/env python3
"""Speed of the formant postfilter, streamed frame by frame as the decoder would run it (one core).

Prints the real-time factor: seconds of compute per second of 16 kHz audio (the per-frame LPC is not counted:
the decoder computes it anyway). Input: a bundled speech sample, its quantized features' predictors.

    OMP_NUM_THREADS=1 python scripts/bench_formant_postfilter.py [--seconds 30] [--repeats 5]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.receiver.postfilter import FormantPostfilter, lpcs_from_features  # noqa: E402
from pnsc.shared.constants import FRAME_SIZE, SAMPLE_RATE  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    if a.seconds <= 0 or a.repeats < 1:
        p.error("--seconds must be > 0 and --repeats >= 1")

    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    clip = load_audio(sorted((REPO / "samples").glob("*.flac"))[0], quiet=True)
    n = int(a.seconds * SAMPLE_RATE) // FRAME_SIZE
    x = np.resize(clip, n * FRAME_SIZE).astype(np.float32)
    lpcs = lpcs_from_features(quantize_features(extract_features(x))[1])[:n]
    frames = (x * 32768.0).reshape(n, FRAME_SIZE)
    best = np.inf
    for _ in range(a.repeats):
        pf = FormantPostfilter(0.6, 0.8, 0.2)
        t0 = time.perf_counter()
        for f, lp in zip(frames, lpcs):
            pf.process(f, lp)
        best = min(best, time.perf_counter() - t0)
    rtf = best * SAMPLE_RATE / (n * FRAME_SIZE)
    print(f"formant postfilter: {n} frames ({n * FRAME_SIZE / SAMPLE_RATE:.1f} s) in {best * 1e3:.1f} ms (best of "
          f"{a.repeats}): {best / n * 1e6:.1f} us per 10 ms frame, real-time factor {rtf:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
