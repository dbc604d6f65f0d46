"""``pnsc netem --listen HOST:PORT --to ws://HOST:PORT``: an impairment proxy between any sender and
receiver. Each caller's messages are forwarded to the receiver with seeded loss, bursty loss,
jitter, reordering, duplication and delay (same options as ``pnsc send``); the token header is
passed through and the receiver's close code and reason are passed back.
"""
from __future__ import annotations

import asyncio
import sys


def register(subparsers) -> None:
    from pnsc.shared.netem import add_impairment_arguments

    p = subparsers.add_parser("netem", help="impairment proxy between a sender and a receiver", description=__doc__)
    p.add_argument("--listen", required=True, metavar="HOST:PORT")
    p.add_argument("--to", required=True, metavar="ws://HOST:PORT", help="the receiver (ws:// or wss://)")
    p.add_argument("--cert", default=None, metavar="CERT.pem", help="pin the receiver's certificate (wss://)")
    add_impairment_arguments(p)
    p.set_defaults(func=run)


class NetemProxy:
    """One upstream connection per caller; messages pass through :class:`pnsc.shared.netem.Netem`."""

    def __init__(self, upstream: str, imp, cafile=None, log=None):
        from pnsc.sender.client import client_ssl_context

        self.upstream, self.imp = upstream, imp
        self.ssl = client_ssl_context(cafile) if upstream.startswith("wss://") else None
        self.log = log or (lambda m: None)
        self.server = None
        self.port = None

    async def start(self, host: str, port: int) -> "NetemProxy":
        from websockets.asyncio.server import serve

        from pnsc.shared.protocol import WS_MAX_SIZE

        self.server = await serve(self._handler, host, port, max_size=WS_MAX_SIZE, compression=None,
                                  server_header=None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handler(self, down) -> None:
        import time

        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        from pnsc.shared.netem import Netem
        from pnsc.shared.protocol import CLOSE_POLICY, TOKEN_HEADER, WS_MAX_SIZE

        headers = {}
        tok = down.request.headers.get(TOKEN_HEADER) if down.request else None
        if tok is not None:
            headers[TOKEN_HEADER] = tok
        try:
            up = await connect(self.upstream, additional_headers=headers, ssl=self.ssl, max_size=WS_MAX_SIZE,
                               compression=None, open_timeout=5, proxy=None)
        except InvalidStatus as exc:
            await down.close(CLOSE_POLICY, f"receiver refused: HTTP {exc.response.status_code}")
            return
        except Exception as exc:
            await down.close(1011, f"receiver unreachable: {type(exc).__name__}"[:120])
            return
        netem = Netem(self.imp)
        loop = asyncio.get_running_loop()
        pending: set = set()

        async def deliver(at: float, msg: bytes):
            await asyncio.sleep(max(0.0, at - time.time()))
            try:
                await up.send(msg)
            except ConnectionClosed:
                pass

        try:
            async for msg in down:
                if isinstance(msg, str):
                    msg = msg.encode()
                for at, m in netem.process(msg, time.time()):
                    t = loop.create_task(deliver(at, m))
                    pending.add(t)
                    t.add_done_callback(pending.discard)
        except ConnectionClosed:
            pass
        if pending:
            await asyncio.wait(pending, timeout=5)
        if up.close_code is not None:  # the receiver closed: tell the caller why
            await down.close(up.close_code if up.close_code != 1006 else 1011, up.close_reason or "")
        await up.close()
        self.log(f"caller done: {netem.counts}")


def run(args) -> int:
    from pnsc.cli import CommandError
    from pnsc.shared.netem import NetemError, impairments_from_args
    from pnsc.shared.protocol import normalize_uri, parse_hostport

    try:
        host, port = parse_hostport(args.listen)
        upstream = normalize_uri(args.to)
        imp = impairments_from_args(args)
    except (ValueError, NetemError) as exc:
        raise CommandError(str(exc)) from None

    async def main():
        proxy = NetemProxy(upstream, imp, args.cert, log=lambda m: print(f"pnsc netem: {m}", file=sys.stderr))
        try:
            await proxy.start(host, port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
        print(f"pnsc netem: ws://{host}:{proxy.port} -> {upstream} {imp.to_dict()}", file=sys.stderr, flush=True)
        from .receive import _on_signals

        stop = asyncio.Event()
        _on_signals(stop.set)
        try:
            await stop.wait()
        finally:
            await proxy.stop()

    asyncio.run(main())
    return 0
