"""Listen to a checkpoint: wav -> 1.6 kb/s features -> decoder (exported to ONNX on the fly) -> wav.

    python -m pnsc.training.lpcnet.decode CKPT IN.wav OUT.wav [--seed 0] [--unquantized]

Uses the same run-time path as ``pnsc decode`` (receiver.reference_decoder: onnxruntime + numpy,
LPC from the quantized cepstrum, de-emphasis), so what you hear is what the exported decoder gives.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time



def decode_wav(ckpt: str, wav_in: str, wav_out: str, seed: int = 0, quantized: bool = True) -> dict:
    import soundfile as sf

    from pnsc.receiver.reference_decoder import ReferenceDecoder
    from pnsc.shared.audio import load_audio
    from pnsc.shared.constants import SAMPLE_RATE
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    from .export import export_model, load_checkpoint

    model, ck = load_checkpoint(ckpt)
    audio = load_audio(wav_in)
    feats = extract_features(audio)
    if quantized:
        _, feats = quantize_features(feats)
    with tempfile.TemporaryDirectory() as d:
        files = export_model(model, d, "m")
        dec = ReferenceDecoder(files["frame"], files["sample"], seed=seed)
        t0 = time.monotonic()
        pcm = dec.decode(feats)
        dt = time.monotonic() - t0
    sf.write(wav_out, pcm, SAMPLE_RATE, subtype="PCM_16")
    return {"name": ck.get("name"), "seconds": len(pcm) / SAMPLE_RATE, "rtf": dt / max(1e-9, len(pcm) / SAMPLE_RATE)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unquantized", action="store_true", help="decode unquantized features")
    a = ap.parse_args(argv)
    info = decode_wav(a.checkpoint, a.input, a.output, a.seed, not a.unquantized)
    print(f"{info['name']}: {info['seconds']:.2f} s decoded, real-time factor {info['rtf']:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
