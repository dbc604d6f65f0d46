"""Quality cost of the runtime's int8 weights against fp32, on held-out real speech.

Each test-other excerpt (../shared/data/librispeech-excerpts/test-other, 5 unseen speakers) is coded at
1.6 kb/s and decoded twice by the personalized decoder of the talker's group (the sender's classifier on
all of the talker's excerpts):
fp32 and int8 weights, the same seed, i.e. the same uniform random stream.  Scores (PESQ-WB, STOI)
against the original speech; the paired difference int8 - fp32 with a 95 % confidence interval.
Needs the ``pesq`` and ``pystoi`` packages (the eval extra).

    OMP_NUM_THREADS=1 python scripts/runtime_quality.py [--per-speaker 5] [--families plpcnet-s,plpcnet-l] [--json OUT]
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


def _shared() -> Path:
    return Path(os.environ.get("PNSC_SHARED_DIR", REPO.parent / "shared"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-speaker", type=int, default=5, help="excerpts per test-other speaker (default 5)")
    ap.add_argument("--families", default="plpcnet-s,plpcnet-l")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--control", action="store_true",
                    help="also decode fp32 with seed+1: the spread from the random stream alone, for scale")
    ap.add_argument("--json", default=None, help="write the per-file scores and the summary here")
    a = ap.parse_args(argv)
    try:
        from pesq import pesq
        from pystoi import stoi
    except ImportError as exc:
        print(f"runtime_quality: needs pesq and pystoi (pip install pesq pystoi): {exc}", file=sys.stderr)
        return 2
    from pnsc.receiver.runtime import StreamingDecoder
    from pnsc.sender.speaker_classifier import SpeakerClassifier
    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    root = _shared() / "data" / "librispeech-excerpts" / "test-other"
    files, spk_files = [], {}
    for spk in sorted(p for p in root.iterdir() if p.is_dir()):
        spk_files[spk.name] = sorted(spk.rglob("*.flac"))[: a.per_speaker]
        files += spk_files[spk.name]
    if not files:
        print(f"runtime_quality: no test-other excerpts under {root}", file=sys.stderr)
        return 2
    clf = SpeakerClassifier()  # one group per talker, from all of its excerpts (some are too short alone)
    groups = {spk: clf.classify(np.concatenate([load_audio(f, quiet=True) for f in fs])).group
              for spk, fs in spk_files.items() if fs}
    rows = []
    for i, f in enumerate(files):
        pcm = load_audio(f, quiet=True)
        group = groups[f.parent.parent.name]
        feats = quantize_features(extract_features(pcm))[1]
        ref = pcm[: feats.shape[0] * 160]
        for fam in a.families.split(","):
            row = {"file": f.name, "family": fam, "group": group}
            runs = [("fp32", "fp32", a.seed), ("int8", "int8", a.seed)]
            if a.control:
                runs.append(("fp32s1", "fp32", a.seed + 1))
            for prec_name, prec, seed in runs:
                dec = StreamingDecoder(fam, group, precision=prec, seed=seed)
                out = dec.decode(feats)[: ref.size].astype(np.float32) / 32768.0
                row[f"pesq_{prec_name}"] = float(pesq(16000, ref, out, "wb"))
                row[f"stoi_{prec_name}"] = float(stoi(ref, out, 16000, extended=False))
            rows.append(row)
            print(f"[{i + 1}/{len(files)}] {f.name} {fam} g{group}: PESQ-WB fp32 {row['pesq_fp32']:.3f} "
                  f"int8 {row['pesq_int8']:.3f}  STOI fp32 {row['stoi_fp32']:.3f} int8 {row['stoi_int8']:.3f}",
                  file=sys.stderr, flush=True)
    summary = {}
    for fam in a.families.split(","):
        r = [x for x in rows if x["family"] == fam]
        s = {"files": len(r)}
        for m in ("pesq", "stoi"):
            fp, q = np.array([x[f"{m}_fp32"] for x in r]), np.array([x[f"{m}_int8"] for x in r])
            d = q - fp
            ci = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            s[m] = {"fp32": float(fp.mean()), "int8": float(q.mean()), "diff": float(d.mean()), "ci95": float(ci)}
            if a.control:
                dc = np.array([x[f"{m}_fp32s1"] for x in r]) - fp
                s[m]["control_diff"] = float(dc.mean())
                s[m]["control_abs_diff"] = float(np.abs(dc).mean())
                s[m]["int8_abs_diff"] = float(np.abs(d).mean())
        summary[fam] = s
        print(f"{fam}: {s['files']} files  PESQ-WB fp32 {s['pesq']['fp32']:.3f} int8 {s['pesq']['int8']:.3f} "
              f"diff {s['pesq']['diff']:+.3f} +- {s['pesq']['ci95']:.3f}   STOI fp32 {s['stoi']['fp32']:.3f} "
              f"int8 {s['stoi']['int8']:.3f} diff {s['stoi']['diff']:+.4f} +- {s['stoi']['ci95']:.4f}")
        if a.control:
            print(f"{fam}: mean |score change| int8 vs fp32: PESQ {s['pesq']['int8_abs_diff']:.4f} STOI "
                  f"{s['stoi']['int8_abs_diff']:.4f}; fp32 seed+1 vs fp32: PESQ {s['pesq']['control_abs_diff']:.4f} "
                  f"STOI {s['stoi']['control_abs_diff']:.4f} (mean {s['pesq']['control_diff']:+.4f} / "
                  f"{s['stoi']['control_diff']:+.4f})")
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
