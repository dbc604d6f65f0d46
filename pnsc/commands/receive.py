"""``pnsc receive --listen HOST:PORT [--output FILE.wav | --device N]``: the receiving half of a call.

A websockets server (one caller at a time) validates every message, feeds the adaptive jitter
buffer, conceals lost packets and decodes with the runtime decoders of one size (all loaded up
front; the caller's speaker group picks the personalized one, the generic one until it is known).
Audio goes to a sound device (10 ms callback) or a WAV file written in real time; with
``--no-pace`` the file is written as fast as packets come (drain mode: no clock, holes concealed
when later packets arrive). ``--once`` exits when the caller says bye. Ctrl-C stops.
``--postfilter G_N,G_D,MU`` (e.g. 0.7,0.85,0; default off) runs the formant postfilter on everything the
decoder puts out, concealed frames and decoder switches included.
"""
from __future__ import annotations

import asyncio
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("receive", help="receive a call and play or record it", description=__doc__)
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="address to listen on (port 0: any)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", metavar="FILE.wav", help="write the received audio to this WAV file")
    out.add_argument("--device", metavar="N", help="output sound device (default device if omitted)")
    add_receiver_arguments(p)
    p.add_argument("--no-pace", action="store_true", help="with --output: write as fast as packets arrive")
    p.add_argument("--once", action="store_true", help="exit after the first call ends (bye)")
    p.set_defaults(func=run)


def add_receiver_arguments(p) -> None:
    p.add_argument("--size", choices=("s", "l"), default="s", help="decoder size (PLPCNet-S or -L; default s)")
    p.add_argument("--baseline", action="store_true", help="always use the generic decoder of the size")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None, help="runtime decoder precision (default fp32; int8 is twice as fast, slightly worse)")
    p.add_argument("--decoder-seed", type=int, default=0, help="decoder sampling seed")
    add_postfilter_argument(p)
    p.add_argument("--token", default=None, help="require this shared secret from callers")
    p.add_argument("--cert", default=None, metavar="CERT.pem", help="serve wss:// with this certificate")
    p.add_argument("--key", default=None, metavar="KEY.pem", help="private key of --cert")
    p.add_argument("--json-stats", default=None, metavar="FILE", help="write receiver counters here every second")
    p.add_argument("--models-dir", default=None, help="models folder (default: $PNSC_MODELS_DIR or models/)")


def add_postfilter_argument(p) -> None:
    """``--postfilter SPEC`` (receive, call, demo; the text of ``pnsc decode --postfilter``)."""
    p.add_argument("--postfilter", default="off", metavar="SPEC",
                   help="formant postfilter on the decoded audio: 'off' (default) or G_N,G_D,MU; 0.7,0.85,0 raised "
                        "PESQ-WB and ESTOI on held-out speech and lowered DNSMOS SIG slightly (README, Quality)")


def postfilter_option(spec: str) -> tuple[float, float, float] | None:
    """The parsed ``--postfilter`` value (None = off); a bad one is a CommandError ``--postfilter: ...``."""
    from pnsc.cli import CommandError
    from pnsc.receiver.postfilter import parse_postfilter

    try:
        return parse_postfilter(spec)
    except ValueError as exc:
        raise CommandError(f"--postfilter: {exc}") from None


def make_receiver(args, mode: str, *, log=None):
    """(ReceiverCore, ReceiverServer) from parsed options; the server is not started yet."""
    from pnsc.cli import CommandError
    from pnsc.receiver.core import ReceiverConfig, ReceiverCore
    from pnsc.receiver.reference_decoder import DecoderNotFound
    from pnsc.receiver.server import ReceiverServer, server_ssl_context
    from pnsc.shared.protocol import parse_hostport

    try:
        host, port = parse_hostport(args.listen)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    postfilter = postfilter_option(args.postfilter)
    ctx = None
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise CommandError("wss needs both --cert and --key (make them with `pnsc cert`)")
        try:
            ctx = server_ssl_context(args.cert, args.key)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot load --cert/--key: {exc}") from None
    cfg = ReceiverConfig(size=args.size, personalized=not args.baseline, seed=args.decoder_seed,
                         models_dir=args.models_dir, precision=args.precision, mode=mode, postfilter=postfilter)
    try:
        core = ReceiverCore(cfg)
    except (DecoderNotFound, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    server = ReceiverServer(core, host, port, token=args.token, ssl_context=ctx, log=log)
    return core, server


async def serve(args, core, server, sink_close, once: bool) -> None:
    from pnsc.cli import CommandError

    done = asyncio.Event()
    _on_signals(done.set)
    if once:
        server.on_disconnect = lambda: done.set() if core.ended else None
    try:
        await server.start()
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    print(f"pnsc receive: listening on {server.uri} ({core.decoder.kernel} kernel, size {args.size}"
          f"{postfilter_text(core)})", file=sys.stderr, flush=True)
    try:
        await done.wait()
    finally:
        await server.stop()
        sink_close()


def postfilter_text(core) -> str:
    """``", formant postfilter 0.7/0.85/0"`` when the receiver's decoder runs one, else ``""``."""
    from pnsc.receiver.postfilter import describe_postfilter

    spec = core.config.postfilter
    return "" if spec is None else ", " + describe_postfilter(spec)


def _on_signals(callback) -> None:
    """SIGINT / SIGTERM end the command cleanly (files closed, counters printed)."""
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, callback)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass


def run(args) -> int:
    from pnsc.cli import CommandError
    from pnsc.receiver.playback import DevicePlayback, DrainWavWriter, RealtimeWavPlayback, StatsWriter

    if args.no_pace and not args.output:
        raise CommandError("--no-pace needs --output FILE.wav")
    log = (lambda m: print(f"pnsc receive: {m}", file=sys.stderr, flush=True))
    mode = "drain" if args.no_pace else "realtime"
    core, server = make_receiver(args, mode, log=log)
    if args.output and args.no_pace:
        sink = DrainWavWriter(core, args.output)
        server.on_audio = sink.write_available
    elif args.output:
        sink = RealtimeWavPlayback(core, args.output).start()
    else:
        try:
            dev = int(args.device) if args.device is not None and str(args.device).isdigit() else args.device
            sink = DevicePlayback(core, dev).start()
        except Exception as exc:
            raise CommandError(f"cannot open output device {args.device if args.device is not None else '(default)'}: "
                               f"{exc} (use --output FILE.wav without a sound card)") from None
    stats = StatsWriter(args.json_stats, lambda: {"receiver": core.snapshot().to_dict(),
                                                  "server": server.snapshot().to_dict()}).start() \
        if args.json_stats else None
    try:
        asyncio.run(serve(args, core, server, sink.close, args.once))
    finally:
        if stats is not None:
            stats.close()
    s = core.snapshot()
    print(f"pnsc receive: {s.received} packets received, {s.lost} lost, {s.late} late, {s.duplicates} duplicates, "
          f"{s.redundancy_recovered} recovered from redundancy, {s.concealed_frames} frames concealed",
          file=sys.stderr)
    return 0
