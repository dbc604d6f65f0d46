"""The sender's network side: an asyncio websockets client that never lets the receiver crash it.

    client = SenderClient("ws://127.0.0.1:7700", core, token=None, cafile=None, netem=Impairments())
    await client.run(FileSource("talk.wav"))     # or DeviceSource(); returns when the source ends
    client.snapshot()                            # SenderStats (live, any time)
    client.set_loss(0.1)                         # live injected loss (the demo's ``l`` key)
    client.stop()                                # ends run() early

- Connects (``hello`` with the session id first), reconnects with exponential backoff (0.1 s doubling
  to 2 s) after any failure and resumes the sequence numbers; packets made while disconnected are
  dropped (real-time audio) and counted. A busy receiver (close 1013) is retried the same way.
- Fatal, with a clear :class:`SenderError`: a refused token (HTTP 401/403) and a TLS certificate that
  does not verify (wrong pin), since retrying cannot fix them.
- ``wss://``: ``cafile`` pins the receiver's self-signed certificate (``pnsc cert``); ``pin`` (hex
  SHA-256 of the certificate, as ``pnsc cert`` prints) is checked as well when given.
- Impairments (:mod:`pnsc.shared.netem`) are applied before sending: with ``pace=True`` deliveries
  are scheduled on the event loop clock; with ``pace=False`` (``--no-pace``) on the stream's own
  virtual clock, so reordering and jitter stay reproducible at any speed.
"""
from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import ssl
import time

from pnsc.shared.netem import Impairments, Netem
from pnsc.shared.protocol import CLOSE_BUSY, TOKEN_HEADER, WS_MAX_SIZE

from .stream import SenderCore, SenderStats

BACKOFF_START, BACKOFF_MAX = 0.1, 2.0


class SenderError(Exception):
    """A failure retrying cannot fix (bad token, certificate mismatch, bad address)."""


def client_ssl_context(cafile: str | None, insecure: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    if cafile or insecure:
        ctx.check_hostname = False  # a LAN peer is reached by IP; the pinned certificate is the check
    if insecure:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SenderClient:
    def __init__(self, uri: str, core: SenderCore, *, token: str | None = None, cafile: str | None = None,
                 pin: str | None = None, netem: Impairments | None = None, pace: bool = True,
                 open_timeout: float = 5.0, log=None):
        if not uri.startswith(("ws://", "wss://")):
            raise SenderError(f"receiver address must start with ws:// or wss://, got {uri!r}")
        self.uri, self.core, self.token, self.pin = uri, core, token, (pin or "").replace(":", "").lower() or None
        self.ssl = client_ssl_context(cafile) if uri.startswith("wss://") else None
        if cafile and not uri.startswith("wss://"):
            raise SenderError("--cert pins a wss:// receiver; the address is ws://")
        self.netem = Netem(netem) if netem is not None and netem.active else None
        self._imp = netem or Impairments()
        self.pace, self.open_timeout, self.log = pace, open_timeout, log or (lambda msg: None)
        self._out: asyncio.Queue | None = None
        self._heap: list = []
        self._tie = itertools.count()
        self._ws = None
        self._stop: asyncio.Event | None = None
        self._user_stop = False
        self._fatal: Exception | None = None
        self._delivered = 0

    # -- live controls ---------------------------------------------------------------------------
    def set_loss(self, loss: float) -> None:
        if self.netem is None:
            self._imp.loss = float(loss)
            self.netem = Netem(self._imp)
        else:
            self.netem.set_loss(loss)
        self.core.stats.loss = float(loss)

    def snapshot(self) -> SenderStats:
        s = self.core.snapshot()
        if self.netem is not None:
            s.netem_dropped = self.netem.counts["dropped"]
            s.loss = self.netem.imp.loss
        return s

    def stop(self) -> None:
        """End ``run()``: the source loop stops, ``bye`` is sent, the connection closes."""
        self._user_stop = True

    # -- connection ------------------------------------------------------------------------------
    async def _connect_loop(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        delay = BACKOFF_START
        headers = {TOKEN_HEADER: self.token} if self.token else None
        while not self._stop.is_set():
            try:
                ws = await connect(self.uri, additional_headers=headers, ssl=self.ssl, open_timeout=self.open_timeout,
                                   max_size=WS_MAX_SIZE, compression=None, ping_interval=5, ping_timeout=10,
                                   close_timeout=1, proxy=None)
            except InvalidStatus as exc:
                code = exc.response.status_code
                if code in (401, 403):
                    self._fatal = SenderError(f"receiver refused the connection: HTTP {code} (wrong or missing --token)")
                    self._stop.set()
                    return
                self.core.stats.last_error = f"HTTP {code}"
            except ssl.SSLCertVerificationError as exc:
                self._fatal = SenderError(f"receiver certificate does not verify against --cert: {exc.verify_message}")
                self._stop.set()
                return
            except (OSError, asyncio.TimeoutError, TimeoutError, ssl.SSLError, Exception) as exc:  # noqa: B014
                self.core.stats.last_error = f"{type(exc).__name__}: {exc}"[:200]
            else:
                if self.pin and not self._pin_ok(ws):
                    await ws.close()
                    self._fatal = SenderError("receiver certificate does not match --pin")
                    self._stop.set()
                    return
                try:
                    await ws.send(self.core.hello())
                except Exception as exc:
                    self.core.stats.last_error = f"{type(exc).__name__}: {exc}"[:200]
                else:
                    self.core.stats.connects += 1
                    self.core.stats.reconnects = max(0, self.core.stats.connects - 1)
                    self.core.stats.connected = True
                    self._ws = ws
                    delay = BACKOFF_START
                    self.log(f"connected to {self.uri}")
                    await self._wait_closed(ws)
                    self._ws = None
                    self.core.stats.connected = False
                    if self._stop.is_set():
                        return
                    rc = ws.close_code
                    if rc == CLOSE_BUSY:
                        self.log(f"receiver busy ({ws.close_reason}); retrying")
                    else:
                        self.log(f"connection closed ({rc} {ws.close_reason}); reconnecting")
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(BACKOFF_MAX, delay * 2)

    def _pin_ok(self, ws) -> bool:
        sslobj = ws.transport.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj else None
        return bool(der) and hashlib.sha256(der).hexdigest() == self.pin

    async def _wait_closed(self, ws) -> None:
        closed = asyncio.ensure_future(ws.wait_closed())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({closed, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not closed.done():
            closed.cancel()

    async def _writer(self) -> None:
        while True:
            msg = await self._out.get()
            if msg is None:
                return
            ws = self._ws
            if ws is None:
                self.core.stats.dropped_offline += 1
                continue
            try:
                await ws.send(msg)
                self.core.stats.sent += 1
                self.core.stats.bytes_sent += len(msg)
            except Exception:
                self.core.stats.dropped_offline += 1

    # -- impairments -----------------------------------------------------------------------------
    def _submit(self, msg: bytes, now: float) -> None:
        if self.netem is None:
            self._out.put_nowait(msg)
            return
        for t, m in self.netem.process(msg, now):
            heapq.heappush(self._heap, (t, next(self._tie), m))
        if self.pace:
            self._release(now)

    def _release(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._out.put_nowait(heapq.heappop(self._heap)[2])

    async def _pacer(self) -> None:
        while True:
            if self._heap:
                wait = self._heap[0][0] - time.time()
                if wait > 0:
                    await asyncio.sleep(min(wait, 0.005))
                self._release(time.time())
            else:
                await asyncio.sleep(0.002)

    # -- main ------------------------------------------------------------------------------------
    async def run(self, source, *, wait_connected: float = 0.0, linger: float = 1.0) -> SenderStats:
        """Stream ``source`` until it ends (or ``stop()``); then send ``bye`` and close."""
        self._stop = asyncio.Event()
        self._out = asyncio.Queue()
        conn = asyncio.ensure_future(self._connect_loop())
        writer = asyncio.ensure_future(self._writer())
        pacer = asyncio.ensure_future(self._pacer()) if self.pace and self.netem is not None else None
        try:
            t_end = time.monotonic() + wait_connected
            while self._ws is None and time.monotonic() < t_end and not self._stop.is_set() and not self._user_stop:
                await asyncio.sleep(0.01)
            async for pcm, t_cap in source:
                if self._stop.is_set() or self._user_stop:
                    break
                for msg in self.core.push(pcm, t_cap):
                    self._submit(msg, time.time() if self.pace else t_cap)  # no-pace: the stream's own clock
                if not self.pace:
                    self._release(t_cap)
                    await self._drain_queue()
            if not self._stop.is_set():
                for msg in self.core.flush():
                    self._submit(msg, time.time() if self.pace else float("inf"))
                self._release(float("inf"))
                self._out.put_nowait(self.core.bye())
                await self._drain_queue(linger)
        finally:
            self._out.put_nowait(None)
            try:
                await asyncio.wait_for(writer, linger)
            except (asyncio.TimeoutError, Exception):
                writer.cancel()
            if pacer is not None:
                pacer.cancel()
            self._stop.set()
            ws = self._ws
            if ws is not None:
                try:
                    await asyncio.wait_for(ws.close(), 1.0)
                except Exception:
                    pass
            try:
                await asyncio.wait_for(conn, 2.0)
            except (asyncio.TimeoutError, Exception):
                conn.cancel()
        if self._fatal is not None:
            raise self._fatal
        return self.snapshot()

    async def _drain_queue(self, timeout: float = 5.0) -> None:
        """Let the writer empty the queue (fast mode keeps memory flat and ordering exact)."""
        end = time.monotonic() + timeout
        while not self._out.empty() and time.monotonic() < end:
            if self._ws is None and self._stop.is_set():
                return
            await asyncio.sleep(0)
        if self._out.empty():
            await asyncio.sleep(0)
