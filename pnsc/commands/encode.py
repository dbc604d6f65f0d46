"""``pnsc encode IN.wav OUT.pnsc``: any audio file -> 1600 b/s packets in a .pnsc file."""
from __future__ import annotations

import argparse
import sys

from pnsc.cli import CommandError
from pnsc.shared.audio import load_audio
from pnsc.shared.constants import BITRATE, GROUP_UNKNOWN, PACKET_BYTES, SAMPLE_RATE
from pnsc.shared.features import extract_features
from pnsc.shared.pnscfile import HEADER_BYTES, write_pnsc
from pnsc.shared.quantizer import PacketEncoder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode an audio file to a .pnsc bitstream (1600 b/s)")
    p.add_argument("input", help="audio file (any rate / channels; resampled to 16 kHz mono)")
    p.add_argument("output", help="output .pnsc file")
    p.add_argument("--group", default=None,
                   help="speaker group for the header: a number, or 'auto' to classify the talker "
                        "(as the sender does); default: unknown")
    p.set_defaults(func=run)


def _header_group(spec: str | None, pcm) -> int:
    if spec is None:
        return GROUP_UNKNOWN
    if spec == "auto":
        from pnsc.sender.speaker_classifier import SpeakerClassificationError, SpeakerClassifier

        try:
            result = SpeakerClassifier().classify(pcm)
        except SpeakerClassificationError as exc:
            print(f"pnsc: cannot classify the talker ({exc}); writing group 'unknown'", file=sys.stderr)
            return GROUP_UNKNOWN
        print(f"pnsc: talker classified into group {result.group} (confidence {result.confidence:.2f})",
              file=sys.stderr)
        return result.group
    try:
        group = int(spec)
    except ValueError:
        raise CommandError(f"--group must be a number or 'auto', got {spec!r}") from None
    if not 0 <= group < GROUP_UNKNOWN:
        raise CommandError(f"--group must be 0..{GROUP_UNKNOWN - 1} or 'auto', got {group}")
    return group


def run(args: argparse.Namespace) -> int:
    pcm = load_audio(args.input)
    group = _header_group(args.group, pcm)
    packets = PacketEncoder().encode(extract_features(pcm))
    size = write_pnsc(args.output, packets, group)
    seconds = len(pcm) / SAMPLE_RATE
    payload_bits = len(packets) * PACKET_BYTES * 8
    coded_seconds = len(packets) * 0.04
    rate = payload_bits / coded_seconds if coded_seconds else float(BITRATE)
    print(
        f"{args.input}: {seconds:.2f} s -> {len(packets)} packets, {payload_bits} payload bits "
        f"({rate:.0f} b/s over {coded_seconds:.2f} s) + {HEADER_BYTES}-byte header = {size} bytes -> {args.output}",
        file=sys.stderr,
    )
    return 0
