"""``pnsc classify IN.wav [--json] [--groups C]``: the sender's speaker-group decision for a file."""
from __future__ import annotations

import json
import sys

from ..cli import CommandError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "classify", help="speaker group of the talker in an audio file",
        description="Classify the talker into a speaker group as the sender does: voice-active speech "
                    "from the start of the audio (up to --seconds of it), speaker encoder, nearest "
                    "group centroid. Confidence = 1 - d_best / d_second. Any amount of speech is used; "
                    "below 3 s (what the sender waits for) a warning says the group is less reliable. "
                    "Audio without speech is refused.")
    p.add_argument("input", metavar="IN.wav", help="audio file (any rate/channels; resampled to 16 kHz mono)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--groups", type=int, default=None, metavar="C",
                   help="number of groups C (a grouping in speaker_groups.json; default: the shipped default, 4)")
    p.add_argument("--seconds", type=float, default=6.0,
                   help="at most this much active speech is used, from the start of the audio (default 6)")
    p.set_defaults(func=run)


def classify_or_explain(pcm, source: str, groups: int | None = None, seconds: float | None = None):
    """(classifier, Classification) of the talker in ``pcm``; a warning on stderr below
    ``DECIDE_SECONDS`` of speech. Raises ``SpeakerClassificationError`` when there is no speech."""
    from pnsc.sender.speaker_classifier import DECIDE_SECONDS, DEFAULT_ACTIVE_SECONDS, SpeakerClassificationError
    from pnsc.sender.speaker_classifier import SpeakerClassifier

    try:
        clf = SpeakerClassifier(groups=groups)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    try:
        result = clf.classify(pcm, max_active_seconds=DEFAULT_ACTIVE_SECONDS if seconds is None else seconds)
    except SpeakerClassificationError as exc:
        raise SpeakerClassificationError(f"{source}: {exc}") from None
    if result.active_seconds < DECIDE_SECONDS:
        print(f"pnsc: warning: {source}: only {result.active_seconds:.2f} s of active speech (the sender "
              f"decides after {DECIDE_SECONDS:.0f} s); the group is less reliable", file=sys.stderr)
    return clf, result


def run(args) -> int:
    from pnsc.shared.audio import load_audio

    if not args.seconds > 0:
        raise CommandError(f"--seconds must be positive, got {args.seconds}")
    pcm = load_audio(args.input)
    clf, result = classify_or_explain(pcm, str(args.input), args.groups, args.seconds)
    if args.json:
        out = {"input": str(args.input), "groups": clf.num_groups, **result.to_dict()}
        print(json.dumps(out))
    else:
        dist = " ".join(f"{i}:{d:.3f}" for i, d in enumerate(result.distances))
        print(f"group {result.group} of {clf.num_groups}  confidence {result.confidence:.3f}  "
              f"(active speech used {result.active_seconds:.2f} s, {result.segments} segment(s))")
        print(f"distances  {dist}")
    return 0
