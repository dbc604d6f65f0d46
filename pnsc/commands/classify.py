"""``pnsc classify IN.wav [--json] [--groups C]``: the sender's speaker-group decision for a file."""
from __future__ import annotations

import json

from ..cli import CommandError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "classify", help="speaker group of the talker in an audio file",
        description="Classify the talker into a speaker group as the sender does: voice-active speech "
                    "from the start of the audio (up to --seconds of it), speaker encoder, nearest "
                    "group centroid. Confidence = 1 - d_best / d_second.")
    p.add_argument("input", metavar="IN.wav", help="audio file (any rate/channels; resampled to 16 kHz mono)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--groups", type=int, default=None, metavar="C",
                   help="number of groups C (a grouping in speaker_groups.json; default: the shipped default, 4)")
    p.add_argument("--seconds", type=float, default=6.0,
                   help="active speech used from the start of the audio (default 6; at least 1.5 s needed)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pnsc.sender.speaker_classifier import SpeakerClassifier
    from pnsc.shared.audio import load_audio

    if args.seconds < 1.5:
        raise CommandError("--seconds must be at least 1.5")
    pcm = load_audio(args.input)
    try:
        clf = SpeakerClassifier(groups=args.groups)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    result = clf.classify(pcm, max_active_seconds=args.seconds)
    if args.json:
        out = {"input": str(args.input), "groups": clf.num_groups, **result.to_dict()}
        print(json.dumps(out))
    else:
        dist = " ".join(f"{i}:{d:.3f}" for i, d in enumerate(result.distances))
        print(f"group {result.group} of {clf.num_groups}  confidence {result.confidence:.3f}  "
              f"(active speech {result.active_seconds:.1f} s, {result.segments} segment(s))")
        print(f"distances  {dist}")
    return 0
