"""``pnsc decode IN.pnsc OUT.wav``: decode a .pnsc bitstream with the real-time decoder runtime
(compiled sample loop, ``pnsc.receiver.runtime``); ``--reference`` uses the slow onnxruntime reference
decoder instead.  With ``--precision fp32`` the runtime follows the reference's sampling choices (same
seed, same random stream) up to float rounding.

Personalized decoders (plpcnet-s / plpcnet-l) use the speaker group from the file header unless
``--group`` is given; when neither gives a group (the header says 'unknown'), the generic decoder of
the same size is used instead. Whenever the decoder or group used differs from what was asked,
a note on stderr says which one runs and why. Format-version-2 files store the input's length and
decode to exactly that many samples.

``--pdf-floor F`` sets the sampling's probability floor (LPCNet's rule: F is subtracted from every mu-law
level's probability before each draw, which cuts the improbable tail heard as hiss; default 0.0005, 0 = plain
softmax sampling, F < 1/256), on the runtime and the reference decoder alike.
"""
from __future__ import annotations

import sys
from pathlib import Path

FAMILIES = ("plpcnet-s", "plpcnet-l", "lpcnet-bl-s", "lpcnet-bl-l")


def register(subparsers) -> None:
    import argparse

    p = subparsers.add_parser("decode", help="decode a .pnsc file to a 16 kHz wav (real-time C runtime)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN.pnsc")
    p.add_argument("output", metavar="OUT.wav", help="output audio file (.wav or .flac, 16-bit)")
    p.add_argument("--decoder", choices=FAMILIES, default="plpcnet-s")
    p.add_argument("--group", type=int, default=None,
                   help="speaker group for a personalized decoder (default: the group in the file header)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same audio)")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None,
                   help="runtime weight precision (default: the runtime's, fp32; int8 is twice as fast)")
    p.add_argument("--pdf-floor", type=float, default=None, metavar="F",
                   help="sampling probability floor, 0 <= F < 1/256 (default: the runtime's, 0.0005; 0 = off)")
    p.add_argument("--postfilter", default="off", metavar="SPEC",
                   help="formant postfilter: 'off' (default) or G_N,G_D,MU; 0.7,0.85,0 raised PESQ-WB and ESTOI on "
                        "held-out speech and lowered DNSMOS SIG slightly (README, Quality); runtime decoder only")
    p.add_argument("--reference", action="store_true", help="use the slow onnxruntime reference decoder")
    p.add_argument("--models-dir", default=None, help="models folder (default: $PNSC_MODELS_DIR or models/)")
    p.set_defaults(func=run)


def choose_decoder(family: str, header_group: int | None, group_arg: int | None) -> tuple[str, int | None, str | None]:
    """-> (family, group, note): the decoder actually used, and a note when it is not what was asked."""
    from pnsc.cli import CommandError
    from pnsc.shared.constants import GROUP_UNKNOWN, NUM_GROUPS

    if group_arg is not None and not 0 <= group_arg < NUM_GROUPS:
        raise CommandError(f"--group must be 0..{NUM_GROUPS - 1}, got {group_arg}")
    header_known = header_group is not None and int(header_group) != GROUP_UNKNOWN
    if not family.startswith("plpcnet"):
        note = (f"--group {group_arg} ignored: {family} is the generic decoder (one for all speaker groups)"
                if group_arg is not None else None)
        return family, None, note
    if group_arg is not None:
        note = None
        if header_known and int(header_group) != group_arg:
            note = f"using speaker group {group_arg} from --group; the file header says group {int(header_group)}"
        return family, group_arg, note
    if not header_known:
        fallback = family.replace("plpcnet", "lpcnet-bl")
        return fallback, None, (f"using the generic {fallback} instead of {family}: the file carries no speaker "
                                f"group (encoded with --group unknown, or no speech to classify); "
                                f"give --group 0..{NUM_GROUPS - 1} to choose one")
    group = int(header_group)
    if not 0 <= group < NUM_GROUPS:
        raise CommandError(f"the file's speaker group {group} is out of range 0..{NUM_GROUPS - 1}; "
                           f"give --group to choose one")
    return family, group, None


def run(args) -> int:
    import numpy as np
    import soundfile as sf

    from pnsc.checks import AUDIO_OUTPUT_SUFFIXES, check_output_path
    from pnsc.cli import CommandError
    from pnsc.receiver.reference_decoder import DecoderNotFound, ReferenceDecoder
    from pnsc.receiver.sampling import check_pdf_floor
    from pnsc.shared.constants import FEATURE_DIM, PDF_FLOOR, SAMPLE_RATE
    from pnsc.shared.pnscfile import read_pnsc
    from pnsc.shared.quantizer import PacketDecoder, load_codebooks

    src = Path(args.input)
    if not src.is_file():
        raise CommandError(f"no such file: {src}")
    check_output_path(args.output, AUDIO_OUTPUT_SUFFIXES)
    try:
        pdf_floor = check_pdf_floor(PDF_FLOOR if args.pdf_floor is None else args.pdf_floor)
    except ValueError as exc:
        raise CommandError(f"--pdf-floor: {exc}") from None
    from pnsc.receiver.postfilter import FormantPostfilter, describe_postfilter

    from .receive import postfilter_option

    postfilter = postfilter_option(args.postfilter)
    if postfilter is not None and args.reference:
        raise CommandError("--postfilter needs the runtime decoder (not --reference)")
    header, packets = read_pnsc(src)
    family, group, note = choose_decoder(args.decoder, header.group, args.group)
    if note:
        print(f"pnsc: note: {note}", file=sys.stderr)
    from pnsc.receiver.runtime import KernelUnavailable

    try:
        if args.reference:
            dec = ReferenceDecoder.from_manifest(family, group, args.models_dir, seed=args.seed, pdf_floor=pdf_floor)
            name, how, served = dec.entry.name, "reference decoder", dec.entry.serves_as
        else:
            from pnsc.receiver.runtime import DEFAULT_PRECISION, StreamingDecoder

            dec = StreamingDecoder(family, group, seed=args.seed, models_dir=args.models_dir,
                                   precision=args.precision or DEFAULT_PRECISION, pdf_floor=pdf_floor,
                                   postfilter=None if postfilter is None else FormantPostfilter(*postfilter))
            name, how, served = dec.name, f"{dec.precision}, {dec.kernel} kernel", dec.serves_as
    except (DecoderNotFound, KernelUnavailable, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if served:  # a personalized slot whose group falls back to the baseline (the manifest says why)
        name += f" (served by {served})"
    if pdf_floor != PDF_FLOOR:
        how += f", sampling floor {pdf_floor:g}"
    if postfilter is not None:
        how += ", " + describe_postfilter(postfilter)
    packets = np.asarray(packets, np.uint8)
    cb_path = Path(args.models_dir) / "codebooks-v1.npz" if args.models_dir else None
    codebooks = load_codebooks(cb_path if cb_path is not None and cb_path.is_file() else None)
    features = PacketDecoder(codebooks).decode(packets) if len(packets) else np.zeros((0, FEATURE_DIM), np.float32)
    pcm = dec.decode(features)[:header.output_samples]
    if header.num_samples is None:
        print(f"pnsc: note: {src} is format version {header.version} (no stored length): the output is padded "
              f"to whole 40 ms packets", file=sys.stderr)
    sf.write(str(args.output), pcm, SAMPLE_RATE, subtype="PCM_16")
    group_text = "" if group is None else f" (speaker group {group})"
    print(f"pnsc decode: {len(packets)} packets -> {len(pcm)} samples ({len(pcm) / SAMPLE_RATE:.2f} s) "
          f"with {name}{group_text}, {how} -> {args.output}", file=sys.stderr)
    return 0
