"""``pnsc encode IN.wav OUT.pnsc [--group auto|unknown|N]``: any audio file -> 1600 b/s packets.

By default the talker is classified as the sender does (``--group auto``) and the speaker group goes
into the header, so ``pnsc decode`` can pick that group's personalized decoder. Audio without speech
(silence) is encoded with group ``unknown``; decoders then use the generic baseline.
"""
from __future__ import annotations

import argparse
import sys

from pnsc.checks import check_output_path
from pnsc.cli import CommandError
from pnsc.shared.audio import load_audio
from pnsc.shared.constants import BITRATE, GROUP_UNKNOWN, NUM_GROUPS, PACKET_BYTES, PACKET_SAMPLES, SAMPLE_RATE
from pnsc.shared.features import extract_features
from pnsc.shared.pnscfile import HEADER_BYTES, write_pnsc
from pnsc.shared.quantizer import PacketEncoder

GROUP_HELP = (f"speaker group written to the header: 'auto' (default: classify the talker as the sender "
              f"does), 'unknown' (decoders use the generic baseline), or a group number 0..{NUM_GROUPS - 1}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode an audio file to a .pnsc bitstream (1600 b/s)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="audio file (any rate / channels; resampled to 16 kHz mono)")
    p.add_argument("output", help="output .pnsc file")
    p.add_argument("--group", default="auto", metavar="auto|unknown|N", help=GROUP_HELP)
    p.set_defaults(func=run)


def parse_group(spec: str) -> int | str:
    """'auto' -> 'auto'; 'unknown' -> GROUP_UNKNOWN; '0'..'NUM_GROUPS-1' -> int; else CommandError."""
    spec = str(spec).strip().lower()
    if spec in ("auto", "unknown"):
        return "auto" if spec == "auto" else GROUP_UNKNOWN
    try:
        group = int(spec)
    except ValueError:
        group = None
    if group is None or not 0 <= group < NUM_GROUPS:
        raise CommandError(f"--group must be 'auto', 'unknown' or a group number 0..{NUM_GROUPS - 1}, got {spec!r}")
    return group


def _classify_group(pcm, source: str) -> int:
    from pnsc.sender.speaker_classifier import SpeakerClassificationError

    from .classify import classify_or_explain

    try:
        _, result = classify_or_explain(pcm, source)
    except SpeakerClassificationError as exc:
        print(f"pnsc: note: cannot classify the talker ({exc}); writing speaker group 'unknown', so decoders "
              f"use the generic baseline", file=sys.stderr)
        return GROUP_UNKNOWN
    print(f"pnsc: talker classified into group {result.group} (confidence {result.confidence:.2f}, "
          f"{result.active_seconds:.2f} s of speech)", file=sys.stderr)
    return result.group


def run(args: argparse.Namespace) -> int:
    group = parse_group(args.group)
    check_output_path(args.output)
    pcm = load_audio(args.input)
    if len(pcm) < PACKET_SAMPLES:
        raise CommandError(
            f"{args.input}: audio is too short to encode: {len(pcm) / SAMPLE_RATE:.3f} s ({len(pcm)} samples at "
            f"16 kHz); one packet needs {PACKET_SAMPLES / SAMPLE_RATE:.2f} s")
    if group == "auto":
        group = _classify_group(pcm, str(args.input))
    packets = PacketEncoder().encode(extract_features(pcm))
    size = write_pnsc(args.output, packets, group, num_samples=len(pcm))
    seconds = len(pcm) / SAMPLE_RATE
    payload_bits = len(packets) * PACKET_BYTES * 8
    coded_seconds = len(packets) * PACKET_SAMPLES / SAMPLE_RATE
    rate = payload_bits / coded_seconds if coded_seconds else float(BITRATE)
    group_text = "unknown" if group == GROUP_UNKNOWN else str(group)
    print(
        f"{args.input}: {seconds:.2f} s -> {len(packets)} packets, {payload_bits} payload bits "
        f"({rate:.0f} b/s over {coded_seconds:.2f} s) + {HEADER_BYTES}-byte header = {size} bytes, "
        f"speaker group {group_text} -> {args.output}",
        file=sys.stderr,
    )
    return 0
