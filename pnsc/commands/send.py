"""``pnsc send --to ws://HOST:PORT [--input FILE | --device N]``: the sending half of a call.

Captures 16 kHz mono (a sound device, other rates resampled; or a file paced in real time,
``--no-pace`` as fast as possible), analyses and quantizes every 40 ms with the codec core, adds
the speaker group (decided by the streaming classifier, or ``--group``) and K redundant packets,
and streams msgpack messages over websockets. Reconnects with backoff and resumes the sequence;
a closed receiver never stops the sender. Impairments (``--loss`` ...) are applied before sending.
"""
from __future__ import annotations

import asyncio
import sys


def register(subparsers) -> None:
    from pnsc.sender.stream import DEFAULT_REDUNDANCY
    from pnsc.shared.netem import add_impairment_arguments

    p = subparsers.add_parser("send", help="send speech to a receiver (file or microphone)", description=__doc__)
    p.add_argument("--to", required=True, metavar="ws://HOST:PORT", help="receiver address (ws:// or wss://)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="FILE", help="audio file to send (any rate; resampled)")
    src.add_argument("--device", metavar="N", help="input sound device (index or name; default device if omitted)")
    p.add_argument("--no-pace", action="store_true", help="send a file as fast as possible (tests)")
    p.add_argument("--loop", action="store_true", help="repeat the input file until interrupted")
    p.add_argument("--redundancy", type=int, default=DEFAULT_REDUNDANCY, metavar="K",
                   help=f"previous packets carried in each message (0..8, default {DEFAULT_REDUNDANCY})")
    p.add_argument("--group", type=int, default=None, help="fixed speaker group (default: classify live)")
    p.add_argument("--token", default=None, help="shared secret the receiver requires")
    p.add_argument("--cert", default=None, metavar="CERT.pem", help="pin the receiver's certificate (wss://)")
    p.add_argument("--pin", default=None, metavar="SHA256", help="also require this certificate fingerprint")
    p.add_argument("--json-stats", default=None, metavar="FILE", help="write sender counters here every second")
    add_impairment_arguments(p)
    p.set_defaults(func=run)


def make_sender(args, *, log=None):
    """(SenderCore, SenderClient) from parsed ``send`` / ``call`` options."""
    from pnsc.cli import CommandError
    from pnsc.sender.client import SenderClient, SenderError
    from pnsc.sender.stream import SenderConfig, SenderCore
    from pnsc.shared.netem import NetemError, impairments_from_args
    from pnsc.shared.protocol import normalize_uri

    try:
        uri = normalize_uri(args.to)
        imp = impairments_from_args(args)
        cfg = SenderConfig(redundancy=args.redundancy, group=args.group).validate()
        core = SenderCore(cfg)
        client = SenderClient(uri, core, token=args.token, cafile=args.cert, pin=args.pin, netem=imp,
                              pace=not getattr(args, "no_pace", False), log=log)
    except (ValueError, NetemError, SenderError) as exc:
        raise CommandError(str(exc)) from None
    return core, client


def make_source(args):
    from pnsc.cli import CommandError
    from pnsc.sender.capture import DeviceSource, FileSource

    if args.input:
        return FileSource(args.input, pace=not args.no_pace, loop=args.loop)
    try:
        dev = int(args.device) if args.device is not None and str(args.device).isdigit() else args.device
        return DeviceSource(dev)
    except Exception as exc:  # sounddevice/PortAudio errors: no device, bad index
        raise CommandError(f"cannot open input device {args.device if args.device is not None else '(default)'}: "
                           f"{exc} (use --input FILE without a sound card)") from None


def run(args) -> int:
    from pnsc.cli import CommandError
    from pnsc.receiver.playback import StatsWriter
    from pnsc.sender.client import SenderError

    log = (lambda m: print(f"pnsc send: {m}", file=sys.stderr))
    core, client = make_sender(args, log=log)
    source = make_source(args)
    stats = StatsWriter(args.json_stats, lambda: {"sender": client.snapshot().to_dict()}).start() \
        if args.json_stats else None
    async def main():
        from .receive import _on_signals

        _on_signals(client.stop)
        return await client.run(source, wait_connected=5.0 if args.input else 0.0)

    try:
        st = asyncio.run(main())
    except SenderError as exc:
        raise CommandError(str(exc)) from None
    finally:
        if stats is not None:
            stats.close()
    if st.connects == 0:
        raise CommandError(f"could not reach the receiver at {client.uri}"
                           + (f" ({st.last_error})" if st.last_error else ""))
    print(f"pnsc send: {st.packets} packets, {st.sent} messages sent, {st.dropped_offline} dropped while "
          f"disconnected, {st.netem_dropped} dropped by --loss; reconnects {st.reconnects}", file=sys.stderr)
    return 0
