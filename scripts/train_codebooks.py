#!/usr/bin/env python3
"""Train the quantizer codebooks (k-means) on real speech and write models/codebooks-v1.npz.

Usage: python scripts/train_codebooks.py [--corpus DIR] [--subset train-clean-100] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pnsc.shared.audio import load_audio  # noqa: E402
from pnsc.shared.features import extract_features  # noqa: E402
from pnsc.shared.paths import models_dir  # noqa: E402
from pnsc.shared.quantizer import CODEBOOK_FILE  # noqa: E402
from pnsc.training.codebooks import train_codebooks  # noqa: E402
from pnsc.training.corpus.librispeech import scan_corpus  # noqa: E402
from pnsc.shared.paths import LIBRISPEECH_EXCERPTS, shared_path  # noqa: E402

DEFAULT_CORPUS = shared_path(LIBRISPEECH_EXCERPTS)  # ../shared or $PNSC_SHARED_DIR


def _features(path: Path) -> np.ndarray:
    return extract_features(load_audio(path, quiet=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--subset", action="append", default=None, help="subset(s) to use (default train-clean-100)")
    ap.add_argument("--out", type=Path, default=models_dir() / CODEBOOK_FILE)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()

    utts = scan_corpus(args.corpus, args.subset or ["train-clean-100"])
    t0 = time.time()
    with ProcessPoolExecutor(args.jobs) as pool:
        feats = list(tqdm(pool.map(_features, [u.path for u in utts]), total=len(utts), desc="features"))
    print(f"analysed {len(utts)} utterances ({sum(len(f) for f in feats) / 6000:.1f} min) in {time.time() - t0:.0f} s")

    bar = tqdm(desc="k-means iterations")
    cb = train_codebooks(feats, seed=args.seed, iters=args.iters, progress=lambda err: bar.update(1))
    bar.close()
    cb.info.update({"corpus": str(args.corpus.name), "subsets": args.subset or ["train-clean-100"]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cb.save(args.out)
    print(json.dumps(cb.info), f"-> {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
