"""``pnsc call --listen HOST:PORT --peer HOST:PORT``: full duplex, a sender and a receiver in one
process (one microphone, one speaker). Run it on both machines, each with the other as ``--peer``.
Options are those of ``pnsc send`` and ``pnsc receive`` (``--input FILE`` replaces the microphone).
"""
from __future__ import annotations

import asyncio
import sys


def register(subparsers) -> None:
    from pnsc.sender.stream import DEFAULT_REDUNDANCY
    from pnsc.shared.netem import add_impairment_arguments

    from .receive import add_receiver_arguments

    p = subparsers.add_parser("call", help="two-way call: send the microphone, play the peer", description=__doc__)
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="where the peer connects to us")
    p.add_argument("--peer", required=True, metavar="HOST:PORT", help="the peer's --listen address "
                   "(ws://, wss:// or bare HOST:PORT)")
    p.add_argument("--input", metavar="FILE", help="send this file instead of the microphone")
    p.add_argument("--input-device", metavar="N", dest="device", help="input sound device")
    p.add_argument("--output-device", metavar="N", help="output sound device")
    p.add_argument("--output", metavar="FILE.wav", help="write what we receive to a WAV file (real time) "
                   "instead of the speaker")
    p.add_argument("--linger", type=float, default=1.0, metavar="S",
                   help="with --input: keep receiving this long after our file is sent (default 1)")
    p.add_argument("--loop", action="store_true", help="repeat --input")
    p.add_argument("--redundancy", type=int, default=DEFAULT_REDUNDANCY, metavar="K")
    p.add_argument("--group", type=int, default=None, help="fixed speaker group for what we send")
    p.add_argument("--peer-token", default=None, help="token the peer requires (default: --token)")
    p.add_argument("--peer-cert", default=None, metavar="CERT.pem", help="pin the peer's certificate (wss://)")
    p.add_argument("--pin", default=None, metavar="SHA256", help="peer certificate fingerprint")
    add_receiver_arguments(p)
    add_impairment_arguments(p)
    p.set_defaults(func=run, no_pace=False)


def run(args) -> int:
    from types import SimpleNamespace

    from pnsc.cli import CommandError
    from pnsc.receiver.playback import DevicePlayback, RealtimeWavPlayback, StatsWriter
    from pnsc.receiver.postfilter import describe_postfilter
    from pnsc.sender.client import SenderError

    from .receive import make_receiver
    from .send import make_sender, make_source

    log_r = (lambda m: print(f"pnsc call (in): {m}", file=sys.stderr, flush=True))
    log_s = (lambda m: print(f"pnsc call (out): {m}", file=sys.stderr, flush=True))
    core_r, server = make_receiver(args, "realtime", log=log_r)
    send_args = SimpleNamespace(**vars(args))
    send_args.to = args.peer if "://" in args.peer else None
    if send_args.to is None:
        send_args.to = ("wss://" if args.peer_cert else "ws://") + args.peer
    send_args.token = args.peer_token if args.peer_token is not None else args.token
    send_args.cert = args.peer_cert
    _, client = make_sender(send_args, log=log_s)
    source = make_source(send_args)
    if args.output:
        play = RealtimeWavPlayback(core_r, args.output).start()
    else:
        try:
            out_dev = args.output_device
            play = DevicePlayback(core_r, int(out_dev) if out_dev and out_dev.isdigit() else out_dev).start()
        except Exception as exc:
            raise CommandError(f"cannot open output device {args.output_device!r}: {exc}") from None
    stats = StatsWriter(args.json_stats, lambda: {"receiver": core_r.snapshot().to_dict(),
                                                  "server": server.snapshot().to_dict(),
                                                  "sender": client.snapshot().to_dict()}).start() \
        if args.json_stats else None

    async def main():
        from .receive import _on_signals

        _on_signals(client.stop)
        try:
            await server.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
        log_r(f"listening on {server.uri}; calling {client.uri}"
              + (f"; {describe_postfilter(core_r.config.postfilter)}" if core_r.config.postfilter else ""))
        try:
            await client.run(source, wait_connected=10.0 if args.input else 0.0)
            if args.input and args.linger > 0:
                await asyncio.sleep(args.linger)
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except SenderError as exc:
        raise CommandError(str(exc)) from None
    finally:
        play.close()
        if stats is not None:
            stats.close()
    return 0
