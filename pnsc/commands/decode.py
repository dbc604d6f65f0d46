"""``pnsc decode IN.pnsc OUT.wav``: decode a .pnsc bitstream with the real-time decoder runtime
(compiled sample loop, ``pnsc.receiver.runtime``); ``--reference`` uses the slow onnxruntime reference
decoder instead.  With ``--precision fp32`` the runtime follows the reference's sampling choices (same
seed, same random stream) up to float rounding.

Personalized decoders (plpcnet-s / plpcnet-l) use the speaker group from the file header unless
``--group`` is given; when the header carries no group (255), the generic decoder of the same size
is used instead (with a note on stderr).
"""
from __future__ import annotations

import sys
from pathlib import Path

FAMILIES = ("plpcnet-s", "plpcnet-l", "lpcnet-bl-s", "lpcnet-bl-l")


def register(subparsers) -> None:
    p = subparsers.add_parser("decode", help="decode a .pnsc file to a 16 kHz wav",
                              description=__doc__)
    p.add_argument("input", metavar="IN.pnsc")
    p.add_argument("output", metavar="OUT.wav")
    p.add_argument("--decoder", choices=FAMILIES, default="plpcnet-s")
    p.add_argument("--group", type=int, default=None, help="speaker group for a personalized decoder")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same audio)")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None,
                   help="runtime weight precision (default: the runtime's, int8)")
    p.add_argument("--reference", action="store_true", help="use the slow onnxruntime reference decoder")
    p.add_argument("--models-dir", default=None, help="models folder (default: $PNSC_MODELS_DIR or models/)")
    p.set_defaults(func=run)


def choose_decoder(family: str, header_group, group_arg):
    """-> (family, group) actually used."""
    from pnsc.shared.constants import GROUP_UNKNOWN, NUM_GROUPS

    from pnsc.cli import CommandError

    if not family.startswith("plpcnet"):
        return family, None
    group = group_arg if group_arg is not None else header_group
    if group is None or int(group) == GROUP_UNKNOWN:
        fallback = family.replace("plpcnet", "lpcnet-bl")
        print(f"pnsc decode: no speaker group in the file; using the generic {fallback}", file=sys.stderr)
        return fallback, None
    group = int(group)
    if not 0 <= group < NUM_GROUPS:
        raise CommandError(f"speaker group {group} out of range 0..{NUM_GROUPS - 1}")
    return family, group


def run(args) -> int:
    import numpy as np
    import soundfile as sf

    from pnsc.cli import CommandError
    from pnsc.receiver.reference_decoder import DecoderNotFound, ReferenceDecoder
    from pnsc.shared.constants import SAMPLE_RATE
    from pnsc.shared.pnscfile import read_pnsc
    from pnsc.shared.quantizer import PacketDecoder, load_codebooks

    src = Path(args.input)
    if not src.is_file():
        raise CommandError(f"no such file: {src}")
    header, packets = read_pnsc(src)
    family, group = choose_decoder(args.decoder, getattr(header, "group", None), args.group)
    from pnsc.receiver.runtime import KernelUnavailable

    try:
        if args.reference:
            dec = ReferenceDecoder.from_manifest(family, group, args.models_dir, seed=args.seed)
            name = f"{dec.entry.name} (reference)"
        else:
            from pnsc.receiver.runtime import DEFAULT_PRECISION, StreamingDecoder

            dec = StreamingDecoder(family, group, seed=args.seed, models_dir=args.models_dir,
                                   precision=args.precision or DEFAULT_PRECISION)
            name = f"{dec.name} ({dec.precision}, {dec.kernel} kernel)"
    except (DecoderNotFound, KernelUnavailable, ValueError) as exc:
        raise CommandError(str(exc)) from None
    packets = np.asarray(packets, np.uint8)
    cb_path = Path(args.models_dir) / "codebooks-v1.npz" if args.models_dir else None
    codebooks = load_codebooks(cb_path if cb_path is not None and cb_path.is_file() else None)
    features = PacketDecoder(codebooks).decode(packets) if len(packets) else np.zeros((0, 20), np.float32)
    pcm = dec.decode(features)
    sf.write(str(args.output), pcm, SAMPLE_RATE, subtype="PCM_16")
    print(f"pnsc decode: {len(packets)} packets -> {len(pcm) / SAMPLE_RATE:.2f} s with {name}",
          file=sys.stderr)
    return 0
