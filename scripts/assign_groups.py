#!/usr/bin/env python3
"""Assign every speaker of a LibriSpeech-layout folder to a speaker group.

For each speaker: the mean embedding of the 3 s active-speech segments of all its utterances
(shipped models/speaker_encoder.onnx, run by onnxruntime), then the nearest centroid of
models/speaker_groups.json for each grouping C (default: all of them).  Output JSON:

  {"corpus": DIR, "default_groups": 4,
   "speakers": {"<id>": {"groups": {"2": g, ..., "6": g}, "distances": {"4": [...]}, "confidence": {"4": x},
                         "utterances": n, "segments": n, "active_seconds": s}},
   "sizes": {"4": [...], ...}, "skipped": {"<id>": "reason"}}
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.sender import speaker_frontend as fe  # noqa: E402
from pnsc.sender.speaker_classifier import SpeakerClassifier, nearest_centroid  # noqa: E402
from pnsc.shared.audio import AudioError, load_audio  # noqa: E402
from pnsc.training.corpus.librispeech import by_speaker, scan_corpus  # noqa: E402
from pnsc.training.speaker.grouping import utterance_segments  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True, help="LibriSpeech-layout folder")
    ap.add_argument("--out", type=Path, required=True, help="output JSON file")
    ap.add_argument("--subsets", nargs="*", default=None, help="only these subset folders")
    ap.add_argument("--max-utterances", type=int, default=None, help="use at most this many utterances per speaker")
    ap.add_argument("--models", type=Path, default=None,
                    help="folder with speaker_encoder.onnx + speaker_groups.json (default: the shipped models/)")
    args = ap.parse_args(argv)

    clf = (SpeakerClassifier(encoder_path=args.models / "speaker_encoder.onnx",
                             groups_path=args.models / "speaker_groups.json") if args.models else SpeakerClassifier())
    gdata = clf.groups_data
    cents = {c: np.asarray(v["centroids"], dtype=np.float64) for c, v in gdata["groupings"].items()}
    speakers, skipped = {}, {}
    groups = by_speaker(scan_corpus(args.corpus, args.subsets))
    for i, (spk, utts) in enumerate(sorted(groups.items())):
        embs, n_frames = [], 0
        for u in utts[: args.max_utterances]:
            try:
                feats = fe.active_features(load_audio(u.path, quiet=True))
            except AudioError as exc:
                print(f"warning: {exc}", file=sys.stderr)
                continue
            n_frames += len(feats)
            embs.extend(clf.encoder.embed(s) for s in utterance_segments(feats, allow_short=True))
        if not embs:
            skipped[spk] = f"no usable speech ({n_frames / 100:.2f} s active)"
            continue
        z = np.mean(embs, axis=0)
        entry = {"groups": {}, "distances": {}, "confidence": {}, "utterances": len(utts[: args.max_utterances]),
                 "segments": len(embs), "active_seconds": round(n_frames / fe.FRAMES_PER_SECOND, 2)}
        for c, cc in cents.items():
            g, d, conf = nearest_centroid(z, cc)
            entry["groups"][c] = g
            entry["distances"][c] = [round(float(v), 5) for v in d]
            entry["confidence"][c] = round(conf, 4)
        speakers[spk] = entry
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(groups)} speakers", file=sys.stderr)
    sizes = {c: np.bincount([e["groups"][c] for e in speakers.values()], minlength=int(c)).tolist() for c in cents}
    out = {"corpus": str(args.corpus), "encoder": str(clf.encoder.path), "default_groups": gdata["default_groups"],
           "speakers": speakers, "sizes": sizes, "skipped": skipped}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(speakers)} speakers assigned ({len(skipped)} skipped); C={gdata['default_groups']} sizes "
          f"{sizes[str(gdata['default_groups'])]} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
