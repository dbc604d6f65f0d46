"""The receiver's websockets server: one caller at a time, every message validated, abuse closed.

    core = ReceiverCore(ReceiverConfig(size="s"))
    server = ReceiverServer(core, "0.0.0.0", 7700, token="s3cret", ssl_context=server_ssl_context(c, k))
    await server.start()            # server.port is the bound port (0 picks a free one)
    ...                             # playback pulls core.pull() (see .playback)
    await server.stop()
    server.snapshot()               # ServerStats: connections, refused, closed_for_abuse, ...

- Token (optional): the ``X-Pnsc-Token`` header of the websocket handshake, compared in constant
  time; a wrong or missing token gets HTTP 401 before any websocket exists.
- The first message must be ``hello`` within ``hello_timeout`` s; the handshake itself has
  ``open_timeout``.
- A second caller while one is active is closed politely with 1013 "busy".
- Messages over ``WS_MAX_SIZE`` close the connection (1009); every other bad message is dropped
  and counted by reason (``core.stats.invalid``); a client whose violation score (+1 per bad
  message, -0.05 per good one) reaches ``max_violations`` is closed with 1008 and the reason.
- Rate limit: token bucket of ``max_rate`` messages/s (burst ``burst``); excess is dropped
  ("rate"); sustained flooding (``flood_close`` drops within ~2 s) closes with 1008.
- ``on_audio``: called after each accepted message (drain-mode file writers hook in here).

Sender and receiver in one process (what ``pnsc call`` and a live demo do)::

    core = ReceiverCore(ReceiverConfig(size="s"))
    server = await ReceiverServer(core, "127.0.0.1", 0).start()
    play = DevicePlayback(core).start()                  # or RealtimeWavPlayback(core, "heard.wav")
    client = SenderClient(server.uri, SenderCore(), netem=Impairments(loss=0.05, seed=1))
    task = asyncio.create_task(client.run(DeviceSource()))   # or FileSource("talk.wav")
    core.snapshot(); client.snapshot(); server.snapshot()    # live counters (dataclasses, .to_dict())
    core.set_personalized(False)                             # generic decoder of the same size, next frame
    client.set_loss(0.2)                                     # injected loss, live
"""
from __future__ import annotations

import asyncio
import hmac
import ssl
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus

from pnsc.shared.protocol import (
    CLOSE_BUSY,
    CLOSE_POLICY,
    TOKEN_HEADER,
    WS_MAX_SIZE,
    Hello,
    ProtocolError,
    parse_message,
)

from .core import ReceiverCore


def server_ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


@dataclass
class ServerStats:
    connections: int = 0
    active: bool = False
    refused_busy: int = 0
    refused_token: int = 0
    closed_for_abuse: int = 0
    hello_timeouts: int = 0
    rate_dropped: int = 0
    last_close: str = ""
    peer: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class ReceiverServer:
    def __init__(self, core: ReceiverCore, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, max_rate: float = 100.0, burst: float = 100.0,
                 flood_close: int = 100, max_violations: float = 10.0, hello_timeout: float = 5.0,
                 open_timeout: float = 5.0, on_audio=None, on_disconnect=None, log=None):
        self.core, self.host, self.port = core, host, port
        self.token = token.encode() if token else None
        self.ssl = ssl_context
        self.max_rate, self.burst, self.flood_close = max_rate, burst, flood_close
        self.max_violations, self.hello_timeout, self.open_timeout = max_violations, hello_timeout, open_timeout
        self.on_audio, self.on_disconnect = on_audio, on_disconnect
        self.log = log or (lambda msg: None)
        self.stats = ServerStats()
        self._server = None
        self._active = None

    @property
    def scheme(self) -> str:
        return "wss" if self.ssl else "ws"

    @property
    def uri(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", None) else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def _check_token(self, connection, request):
        if self.token is None:
            return None
        got = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(got.encode("utf-8", "replace"), self.token):
            self.stats.refused_token += 1
            self.log("refused a connection: wrong or missing token")
            return connection.respond(HTTPStatus.UNAUTHORIZED, "pnsc: wrong or missing token\n")
        return None

    async def start(self) -> "ReceiverServer":
        from websockets.asyncio.server import serve

        self._server = await serve(self._handler, self.host, self.port, ssl=self.ssl, process_request=self._check_token,
                                   max_size=WS_MAX_SIZE, max_queue=64, compression=None, open_timeout=self.open_timeout,
                                   ping_interval=5, ping_timeout=10, close_timeout=2, server_header=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 3.0)
            except asyncio.TimeoutError:
                pass
            self._server = None

    def snapshot(self) -> ServerStats:
        return ServerStats(**asdict(self.stats))

    async def _handler(self, ws) -> None:
        peer = "%s:%s" % (ws.remote_address[:2] if ws.remote_address else ("?", "?"))
        if self._active is not None:
            self.stats.refused_busy += 1
            self.log(f"refused {peer}: a call is already active")
            await ws.close(CLOSE_BUSY, "busy: another call is in progress")
            return
        self._active = ws
        self.stats.connections += 1
        self.stats.active, self.stats.peer = True, peer
        self.log(f"caller connected: {peer}")
        try:
            await self._serve_call(ws)
        finally:
            self._active = None
            self.stats.active = False
            self.log(f"caller left: {peer} ({ws.close_code} {ws.close_reason})")
            if self.on_disconnect is not None:
                self.on_disconnect()

    async def _close(self, ws, code: int, reason: str) -> None:
        self.stats.last_close = f"{code} {reason}"
        self.log(f"closing: {code} {reason}")
        from websockets.exceptions import ConnectionClosed

        closing = asyncio.ensure_future(ws.close(code, reason))
        try:  # discard what the peer had already sent, so its close reply gets read
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        await closing

    async def _serve_call(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        core = self.core
        try:
            first = await asyncio.wait_for(ws.recv(), self.hello_timeout)
        except asyncio.TimeoutError:
            self.stats.hello_timeouts += 1
            await self._close(ws, CLOSE_POLICY, "no hello within the connect timeout")
            return
        except ConnectionClosed:
            return
        try:
            msg = parse_message(first)
        except ProtocolError as exc:
            core._count_invalid(exc.reason)
            await self._close(ws, CLOSE_POLICY, f"first message must be a valid hello ({exc.reason})")
            return
        if not isinstance(msg, Hello):
            core._count_invalid("schema")
            await self._close(ws, CLOSE_POLICY, "first message must be hello")
            return
        core.handle_message(msg, time.time())
        tokens, last, score, flood = self.burst, time.monotonic(), 0.0, 0.0
        flood_t = last
        try:
            async for data in ws:
                now_m = time.monotonic()
                tokens = min(self.burst, tokens + (now_m - last) * self.max_rate)
                last = now_m
                if tokens < 1.0:
                    self.stats.rate_dropped += 1
                    core._count_invalid("rate")
                    flood = flood * 0.5 ** ((now_m - flood_t) / 2.0) + 1.0  # drops, half-life 2 s
                    flood_t = now_m
                    if flood >= self.flood_close:
                        self.stats.closed_for_abuse += 1
                        await self._close(ws, CLOSE_POLICY, "message rate limit exceeded")
                        return
                    continue
                tokens -= 1.0
                res = core.handle(data, time.time())
                if res == "ok":
                    score = max(0.0, score - 0.05)
                    if self.on_audio is not None:
                        self.on_audio()
                else:
                    score += 1.0
                    if score >= self.max_violations:
                        self.stats.closed_for_abuse += 1
                        await self._close(ws, CLOSE_POLICY, f"too many invalid messages (last: {res})")
                        return
        except ConnectionClosed:
            pass
