"""``pnsc features IN.wav OUT.npz``: unquantized and quantized features, for inspection."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from pnsc.checks import check_output_path
from pnsc.shared.audio import load_audio
from pnsc.shared.features import extract_features
from pnsc.shared.lpc import lpc_from_cepstrum
from pnsc.shared.constants import NB_CEPS
from pnsc.shared.quantizer import quantize_features


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="write unquantized + quantized features of an audio file to .npz")
    p.add_argument("input", help="audio file (any rate / channels)")
    p.add_argument("output", help="output .npz")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    pcm = load_audio(args.input)
    feats = extract_features(pcm)
    packets, qfeats = quantize_features(feats)
    np.savez(
        args.output,
        features=feats,
        qfeatures=qfeats,
        lpc=lpc_from_cepstrum(qfeats[:, :NB_CEPS]),
        packets=packets,
        columns=np.array([f"c{i}" for i in range(NB_CEPS)] + ["pitch_period", "pitch_corr"]),
    )
    print(f"{args.input}: {len(feats)} frames -> {args.output}", file=sys.stderr)
    return 0
