#!/usr/bin/env python3
"""Is the pitch information the decoder receives right?  The codec's per-frame pitch period and voicing
(``shared/features.py`` + ``shared/pitch.py``), before and after the 1.6 kb/s quantizer, against an
independent YIN reference on the clean waveform (``training/lpcnet/pitch_reference.py``).

Sets: validation-speaker LibriSpeech clips (``training/lpcnet/val_clips.py``; never test material), a few
studio-clean VCC 2016 clips (``../shared/data/vcc2016``), and synthetic pulse trains / vowels with known f0
(80-400 Hz steady, and sweeps) where the truth replaces YIN (YIN's own error on them is reported too).

Tracks compared (voiced decision; period in samples at 16 kHz):
  unquantized    feature period, voiced = pitch correlation >= VOICED_CORR (0.35);
  quantized      dequantized period (periods_from_code) with the voiced-only pitch line (the encoder's
                 PITCH_LINE_VOICED_ONLY, off in the shipped codec), voiced = superframe pitch code != 0;
  embed_index    round(dequantized period) clipped to 0..255: the pitch embedding row the network reads;
  quantized_legacy  the shipped encoder's pitch rule (log-period line fitted to all 4 frames, unvoiced ones
                 included), for the before/after comparison.
Scores: voicing precision/recall, gross error (> 20 % off) with octave errors (period x2 = f0 halved,
x0.5 = f0 doubled), fine error in cents on frames both call voiced and not gross. Plus the frame shift
(-2..2) that best aligns the features with the reference, quantized scores split by superframes that the
reference calls fully voiced vs. mixed (onset/offset), and the correlation feature in voiced/unvoiced frames.

    python scripts/pitch_accuracy.py [--shard data/audio_shards/audio-validation-00000.tar]
        [--limit 24] [--vcc-per-speaker 2] [--max-seconds 6] [--json docs/figures/round5/pitch_accuracy.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")

TRACKS = ("unquantized", "quantized", "embed_index", "quantized_legacy")
SHIFTS = (-2, -1, 0, 1, 2)


def _die(msg: str) -> None:
    print(f"pnsc: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def codec_tracks(audio: np.ndarray, codebooks) -> dict[str, np.ndarray]:
    """Per-frame codec pitch: unquantized/quantized period and voicing, correlation, embedding index."""
    from pnsc.shared.bitstream import unpack_array
    from pnsc.shared.constants import CORR_INDEX, FRAMES_PER_PACKET, PERIOD_INDEX, VOICED_CORR
    from pnsc.shared.features import extract_features
    from pnsc.shared import quantizer

    feats = extract_features(audio)
    shipped = quantizer.PITCH_LINE_VOICED_ONLY
    quantizer.PITCH_LINE_VOICED_ONLY = True  # the quantized track measures the voiced-only pitch line
    try:
        packets, q = quantizer.quantize_features(feats, codebooks)
    finally:
        quantizer.PITCH_LINE_VOICED_ONLY = shipped
    code = np.repeat(unpack_array(packets)["pitch"], FRAMES_PER_PACKET)
    return {
        "period": feats[:, PERIOD_INDEX].astype(np.float64),
        "voiced": feats[:, CORR_INDEX] >= VOICED_CORR,
        "corr": feats[:, CORR_INDEX].astype(np.float64),
        "qperiod": q[:, PERIOD_INDEX].astype(np.float64),
        "qvoiced": code != 0,
        "qcorr": q[:, CORR_INDEX].astype(np.float64),
        "legacy": legacy_periods(feats[:, PERIOD_INDEX].astype(np.float64), feats[:, CORR_INDEX].astype(np.float64)),
        "index": np.clip(np.floor(q[:, PERIOD_INDEX].astype(np.float64) + 0.5), 0, 255),
    }


def legacy_periods(period: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """Decoded periods under the shipped encoder rule: the line fitted to all four frames' log periods."""
    from pnsc.shared.quantizer import periods_from_code, pitch_code

    out = np.empty(len(period))
    for s in range(len(period) // 4):
        sl = slice(4 * s, 4 * s + 4)
        out[sl] = periods_from_code(*pitch_code(period[sl], corr[sl], voiced_only=False))
    return out


def _pool(items: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([it[k] for it in items]) for k in items[0]}


def score_set(items: list[dict]) -> dict:
    """items: per clip, codec tracks + ``ref_period``/``ref_voiced`` (same frames)."""
    from pnsc.training.lpcnet.pitch_reference import compare_tracks

    a = _pool(items)
    out = {
        "unquantized": compare_tracks(a["period"], a["voiced"], a["ref_period"], a["ref_voiced"]),
        "quantized": compare_tracks(a["qperiod"], a["qvoiced"], a["ref_period"], a["ref_voiced"]),
        "embed_index": compare_tracks(a["index"], a["qvoiced"], a["ref_period"], a["ref_voiced"]),
        "quantized_legacy": compare_tracks(a["legacy"], a["qvoiced"], a["ref_period"], a["ref_voiced"]),
    }
    # frame alignment: compare codec frame i with reference frame i + s
    shifts = {}
    for s in SHIFTS:
        per = []
        for it in items:
            n = len(it["period"])
            lo, hi = max(0, -s), min(n, n - s)
            per.append({"p": it["period"][lo:hi], "v": it["voiced"][lo:hi],
                        "rp": it["ref_period"][lo + s:hi + s], "rv": it["ref_voiced"][lo + s:hi + s]})
        b = _pool(per)
        c = compare_tracks(b["p"], b["v"], b["rp"], b["rv"])
        shifts[str(s)] = {k: c[k] for k in ("voicing_agreement", "gross_error_rate", "fine_abs_cents_median")}
    out["frame_shift"] = shifts
    # quantized scores on superframes the reference calls fully voiced vs. mixed
    sf_full, sf_mixed = [], []
    for it in items:
        rv = it["ref_voiced"].reshape(-1, 4)
        full = np.repeat(rv.all(axis=1), 4)
        mixed = np.repeat(rv.any(axis=1) & ~rv.all(axis=1), 4)
        sf_full.append({k: it[k][full] for k in it})
        sf_mixed.append({k: it[k][mixed] for k in it})
    for name, part in (("quantized_full_voiced_superframes", sf_full), ("quantized_mixed_superframes", sf_mixed)):
        b = _pool(part)
        out[name] = compare_tracks(b["qperiod"], b["qvoiced"], b["ref_period"], b["ref_voiced"])
        out[name]["unquantized_same_frames"] = compare_tracks(b["period"], b["voiced"], b["ref_period"], b["ref_voiced"])
        out[name]["legacy_same_frames"] = compare_tracks(b["legacy"], b["qvoiced"], b["ref_period"], b["ref_voiced"])
    rv = a["ref_voiced"]
    out["corr"] = {"mean_ref_voiced": float(a["corr"][rv].mean()) if rv.any() else 0.0,
                   "mean_ref_unvoiced": float(a["corr"][~rv].mean()) if (~rv).any() else 0.0,
                   "quantized_mean_ref_voiced": float(a["qcorr"][rv].mean()) if rv.any() else 0.0,
                   "quantized_mean_ref_unvoiced": float(a["qcorr"][~rv].mean()) if (~rv).any() else 0.0}
    out["clips"] = len(items)
    return out


def real_items(clips: list[tuple[str, np.ndarray]], codebooks) -> list[dict]:
    from pnsc.training.lpcnet.pitch_reference import yin_frames

    items = []
    for i, (name, audio) in enumerate(clips):
        t = codec_tracks(audio, codebooks)
        t["ref_period"], t["ref_voiced"] = yin_frames(audio, len(t["period"]))
        items.append(t)
        print(f"\r  {i + 1}/{len(clips)} {name}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return items


def synthetic_items(codebooks) -> tuple[list[dict], dict]:
    """Steady f0 80..400 Hz (pulse train and vowel) and rising/falling sweeps, 1.2 s each; truth as reference.
    Returns the items (truth as reference) and YIN's own scores against the truth."""
    from pnsc.training.lpcnet.pitch_reference import FS, HOP, compare_tracks, synthetic_voice, yin_frames

    items, yin_items = [], []
    n = int(1.2 * FS)
    specs = [(np.full(n, f), v) for f in np.round(np.geomspace(80, 400, 9), 1) for v in (False, True)]
    specs += [(80.0 * 5.0 ** (np.arange(n) / n), True), (400.0 * 0.2 ** (np.arange(n) / n), True),
              (150.0 * (1 + 0.06 * np.sin(2 * np.pi * 5.0 * np.arange(n) / FS)), True)]
    for k, (f0, vowel) in enumerate(specs):
        audio = synthetic_voice(f0, vowel=vowel, seed=k)
        t = codec_tracks(audio, codebooks)
        nf = len(t["period"])
        centre = np.minimum(np.arange(nf) * HOP, n - 1)
        truth = FS / f0[centre]
        ok = (np.arange(nf) >= 4) & (np.arange(nf) < min(nf, n // HOP) - 4)  # whole superframes, no onset/offset
        t = {key: v[ok] for key, v in t.items()}
        t["ref_period"], t["ref_voiced"] = truth[ok], np.ones(int(ok.sum()), bool)
        items.append(t)
        yp, yv = yin_frames(audio, nf)
        yin_items.append({"p": yp[ok], "v": yv[ok], "rp": truth[ok], "rv": np.ones(int(ok.sum()), bool)})
    b = _pool(yin_items)
    return items, compare_tracks(b["p"], b["v"], b["rp"], b["rv"])


def _row(name: str, c: dict) -> str:
    return (f"{name:<44} {c['voicing_precision']:6.3f} {c['voicing_recall']:6.3f} {c['gross_error_rate']:7.3f} "
            f"{c['octave_x2_rate']:6.3f} {c['octave_x05_rate']:6.3f} {c['fine_abs_cents_median']:7.1f} "
            f"{c['fine_abs_cents_p90']:7.1f} {c['fine_bias_cents']:7.1f} {c['both_voiced']:7d}")


def print_table(results: dict) -> None:
    print(f"{'set / track':<44} {'prec':>6} {'recall':>6} {'gross':>7} {'x2':>6} {'x0.5':>6} "
          f"{'|c|med':>7} {'|c|p90':>7} {'bias':>7} {'frames':>7}")
    for set_name, r in results["sets"].items():
        for tr in TRACKS:
            print(_row(f"{set_name} / {tr}", r[tr]))
        for part in ("quantized_full_voiced_superframes", "quantized_mixed_superframes"):
            print(_row(f"{set_name} / q {part.split('_', 1)[1][:-12]}", r[part]))
            print(_row(f"{set_name} /   (unquantized, same frames)", r[part]["unquantized_same_frames"]))
            print(_row(f"{set_name} /   (legacy quantizer, same frames)", r[part]["legacy_same_frames"]))
        sh = "  ".join(f"{s:>2}: agree {v['voicing_agreement']:.3f} gross {v['gross_error_rate']:.3f} "
                       f"|c| {v['fine_abs_cents_median']:.0f}" for s, v in r["frame_shift"].items())
        print(f"  frame shift (codec i vs ref i+s): {sh}")
        c = r["corr"]
        print(f"  corr feature: ref-voiced {c['mean_ref_voiced']:.3f} (q {c['quantized_mean_ref_voiced']:.3f}), "
              f"ref-unvoiced {c['mean_ref_unvoiced']:.3f} (q {c['quantized_mean_ref_unvoiced']:.3f})")
    if "yin_vs_truth_synthetic" in results:
        print(_row("reference YIN vs truth (synthetic)", results["yin_vs_truth_synthetic"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar",
                   help="validation audio shard (LibriSpeech validation speakers)")
    p.add_argument("--limit", type=int, default=24, help="validation clips (round-robin over speakers)")
    p.add_argument("--vcc", type=Path, default=REPO.parent / "shared" / "data" / "vcc2016")
    p.add_argument("--vcc-per-speaker", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--codebooks", default=None, help="codebook file (default models/codebooks-v1.npz)")
    p.add_argument("--json", type=Path, default=REPO / "docs" / "figures" / "round5" / "pitch_accuracy.json")
    a = p.parse_args(argv)
    if a.limit < 0 or a.vcc_per_speaker < 0 or a.max_seconds <= 0:
        _die("--limit and --vcc-per-speaker must be >= 0 and --max-seconds > 0")

    from pnsc.shared.quantizer import CodebookError, load_codebooks
    from pnsc.training.lpcnet.val_clips import validation_clips

    try:
        cb = load_codebooks(a.codebooks)
    except CodebookError as exc:
        _die(str(exc))
    results: dict = {"settings": {"shard": str(a.shard), "limit": a.limit, "vcc_per_speaker": a.vcc_per_speaker,
                                  "max_seconds": a.max_seconds}, "sets": {}}
    n = int(a.max_seconds * 16000)
    if a.limit:
        if not a.shard.is_file():
            _die(f"validation shard not found: {a.shard}")
        print("validation clips", file=sys.stderr)
        clips = [(u, x) for u, _, x in validation_clips(a.shard, limit=a.limit, max_seconds=a.max_seconds)]
        results["sets"]["librispeech_val"] = score_set(real_items(clips, cb))
    if a.vcc_per_speaker:
        import soundfile as sf

        if not a.vcc.is_dir():
            _die(f"VCC 2016 folder not found: {a.vcc}")
        clips = []
        for spk in sorted(d for d in a.vcc.iterdir() if d.is_dir()):
            for f in sorted(spk.glob("*.flac"))[: a.vcc_per_speaker]:
                x, sr = sf.read(f, dtype="float32")
                if sr != 16000:
                    _die(f"{f}: {sr} Hz, expected 16000")
                clips.append((f.name, x[:n]))
        print("VCC 2016 clips", file=sys.stderr)
        results["sets"]["vcc2016"] = score_set(real_items(clips, cb))
    print("synthetic signals", file=sys.stderr)
    items, yin = synthetic_items(cb)
    results["sets"]["synthetic_truth"] = score_set(items)
    results["yin_vs_truth_synthetic"] = yin
    print_table(results)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
