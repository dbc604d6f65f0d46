"""The call over real websockets on loopback with the real runtime decoders: normal call, loss with and
without redundancy, reordering and duplicates, disconnect/reconnect, receiver restart, group change,
protocol abuse (malformed, wrong version, oversize, flood), tokens, TLS, a busy receiver, the CLI."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pnsc.receiver.core import ReceiverConfig, ReceiverCore
from pnsc.receiver.server import ReceiverServer, server_ssl_context
from pnsc.sender.capture import FileSource
from pnsc.sender.client import SenderClient, SenderError
from pnsc.sender.stream import SenderConfig, SenderCore
from pnsc.shared.netem import Impairments
from pnsc.shared.protocol import TOKEN_HEADER, encode_audio, encode_hello, encode_raw
from pnsc.shared.quantizer import PacketDecoder

SECONDS = 1.6


@pytest.fixture(scope="module")
def clip(speech_clip):
    return speech_clip[: int(16000 * SECONDS)]


@pytest.fixture(scope="module")
def decoder():
    from pnsc.receiver.decoders import open_decoder

    return open_decoder("s")


class Gate:
    """A FileSource that pauses after ``at`` chunks until ``event`` is set (to break things mid-call)."""

    def __init__(self, pcm, at=None):
        self.src, self.at, self.event, self.reached = FileSource(pcm=pcm, pace=False, start=1000.0), at, \
            asyncio.Event(), asyncio.Event()

    async def __aiter__(self):
        k = 0
        async for item in self.src:
            if self.at is not None and k == self.at:
                self.reached.set()
                await self.event.wait()
            k += 1
            yield item


async def call(clip, decoder, *, imp=None, redundancy=2, group=1, token=None, server_token=None,
               sender_core=None):
    core = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
    out = []
    srv = await ReceiverServer(core, token=server_token, on_audio=lambda: out.append(core.drain())).start()
    sc = sender_core or SenderCore(SenderConfig(group=group, redundancy=redundancy), sid=11)
    cl = SenderClient(srv.uri, sc, pace=False, netem=imp, token=token)
    try:
        st = await cl.run(FileSource(pcm=clip, pace=False, start=1000.0), wait_connected=3)
        await asyncio.sleep(0.1)
    finally:
        await srv.stop()
    out.append(core.finish())
    return np.concatenate(out), core.snapshot(), st, cl, srv


def offline(packets, decoder, group):
    decoder.switch("plpcnet-s", group)
    decoder.reset()
    return decoder.decode(PacketDecoder().decode(np.stack(packets)))


def packets_of(clip, group=1):
    s = SenderCore(SenderConfig(group=group, redundancy=0), sid=1)
    from pnsc.shared.protocol import parse_message

    msgs = s.push(clip, 0.0) + s.flush()
    return [np.frombuffer(parse_message(m).packet, np.uint8) for m in msgs]


def test_normal_call_equals_offline_decode(clip, decoder):
    y, st, sst, _, _ = asyncio.run(call(clip, decoder))
    ref = offline(packets_of(clip), decoder, 1)
    assert st.received == sst.packets and st.lost == 0 and st.invalid == {}
    assert st.decoder == "plpcnet-s-g1" and st.sessions == 1
    assert np.array_equal(y, ref)


def test_reorder_and_duplicates_are_repaired_exactly(clip, decoder):
    imp = Impairments(reorder=0.3, duplicate=0.3, jitter=15, seed=3)
    y, st, sst, cl, _ = asyncio.run(call(clip, decoder, imp=imp, redundancy=0))
    assert cl.netem.counts["reordered"] > 0 and st.duplicates == cl.netem.counts["duplicated"] > 0
    assert st.lost == 0 and st.late == 0
    assert np.array_equal(y, offline(packets_of(clip), decoder, 1))


@pytest.mark.parametrize("burst", [0, 3])
def test_loss_with_and_without_redundancy(clip, decoder, burst):
    res = {}
    for k in (0, 3):
        imp = Impairments(loss=0.2, burst=burst, seed=7)
        y, st, sst, cl, _ = asyncio.run(call(clip, decoder, imp=imp, redundancy=k))
        n = sst.packets
        dropped = cl.netem.counts["dropped"]
        assert dropped > 0
        assert st.received == n - dropped
        assert st.received + st.redundancy_recovered + st.lost <= n
        assert st.lost + st.redundancy_recovered >= dropped - 3  # the tail may go unnoticed
        assert len(y) == n * 640 and np.abs(y).max() < 32767
        res[k] = st
    assert res[0].redundancy_recovered == 0
    assert res[3].lost < res[0].lost  # same seed, same losses: redundancy repairs some
    if burst == 0:
        assert res[3].lost <= 0.25 * res[0].lost


async def _break_mid_call(clip, decoder, restart: bool):
    core = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
    srv = await ReceiverServer(core).start()
    port = srv.port
    gate = Gate(clip, at=len(clip) // 160 // 2)
    sc = SenderCore(SenderConfig(group=2, redundancy=1), sid=5)
    cl = SenderClient(srv.uri, sc, pace=False)
    task = asyncio.ensure_future(cl.run(gate, wait_connected=3))
    await asyncio.wait_for(gate.reached.wait(), 20)
    await asyncio.sleep(0.05)
    first_half = core.drain()
    core2 = core
    if restart:
        await srv.stop()
        core2 = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
        srv = await ReceiverServer(core2, port=port).start()
    else:
        await srv._active.close(1001, "going away")
    for _ in range(300):
        await asyncio.sleep(0.01)
        if sc.stats.connected and srv.stats.active:
            break
    gate.event.set()
    st = await asyncio.wait_for(task, 30)
    await asyncio.sleep(0.1)
    await srv.stop()
    y = core2.finish()
    return first_half, y, core2.snapshot(), st


def test_disconnect_and_reconnect(clip, decoder):
    first, y, st, sst = asyncio.run(_break_mid_call(clip, decoder, restart=False))
    assert sst.reconnects >= 1 and st.sessions == 1  # same session resumes
    assert st.received == sst.packets  # nothing made while connected was lost
    assert len(first) + len(y) == sst.packets * 640


def test_receiver_restart_mid_call(clip, decoder):
    first, y, st, sst = asyncio.run(_break_mid_call(clip, decoder, restart=True))
    assert sst.reconnects >= 1 and st.sessions == 1
    assert 0 < st.received < sst.packets and len(y) > 0
    assert st.decoder == "plpcnet-s-g2"  # the group rides again within the repeat / every second


def test_group_change_mid_call(clip, decoder):
    class Switching(SenderCore):
        def push(self, pcm, t=None):
            if self.seq >= 20:
                self.config.group = 3
            return super().push(pcm, t)

    sc = Switching(SenderConfig(group=0, redundancy=0), sid=8)
    y, st, sst, _, _ = asyncio.run(call(clip, decoder, sender_core=sc))
    assert st.decoder == "plpcnet-s-g3" and st.group == 3 and st.lost == 0
    # offline: the same packets (the group does not change them), the decoder switched before frame 80
    feats = PacketDecoder().decode(np.stack(packets_of(clip)))

    def decode(switch_frame):
        decoder.switch("plpcnet-s", 0)
        decoder.reset()
        out = []
        for i, f in enumerate(feats):
            if i == switch_frame:  # packet 20 is the first made after the change
                decoder.switch("plpcnet-s", 3)
            out.append(decoder.push(f))
        return np.concatenate(out + [decoder.flush()])

    assert np.array_equal(y, decode(80))
    assert not np.array_equal(y, decode(len(feats)))  # (it did switch)


# -- abuse ---------------------------------------------------------------------------------------
async def _raw_session(decoder, sends, *, hello=True, **srv_kw):
    core = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
    srv = await ReceiverServer(core, **srv_kw).start()
    code = reason = None
    try:
        async with connect(srv.uri, compression=None, max_size=None) as ws:
            if hello:
                await ws.send(encode_hello(1))
            try:
                for m in sends:
                    await ws.send(m)
            except ConnectionClosed:
                pass
            try:
                await asyncio.wait_for(ws.wait_closed(), 0.5)
            except asyncio.TimeoutError:
                pass
            code, reason = ws.close_code, ws.close_reason
        # the server still serves a good caller afterwards
        async with connect(srv.uri, compression=None) as ws2:
            await ws2.send(encode_hello(2))
            await ws2.send(encode_audio(0, 0, bytes(8)))
            await asyncio.sleep(0.05)
    finally:
        await srv.stop()
    return core.snapshot(), srv.snapshot(), code, reason


def test_malformed_msgpack_is_counted_then_closed(decoder):
    st, ss, code, reason = asyncio.run(_raw_session(decoder, [b"\xc1\x00"] * 3))
    assert st.invalid.get("msgpack") == 3 and code is None
    st, ss, code, reason = asyncio.run(_raw_session(decoder, [b"\xc1\x00"] * 30))
    assert code == 1008 and "invalid" in reason and ss.closed_for_abuse == 1
    assert st.received == 1  # the good caller after it


def test_wrong_version(decoder):
    st, ss, code, reason = asyncio.run(_raw_session(decoder, [encode_raw({"v": 2, "t": "hello", "sid": 1})],
                                                    hello=False))
    assert code == 1008 and "hello" in reason and st.invalid.get("version") == 1
    st, *_ = asyncio.run(_raw_session(decoder, [encode_raw({"v": 9, "t": "a", "seq": 0, "ts": 0, "pkt": bytes(8)})]))
    assert st.invalid.get("version") == 1


def test_oversize_messages(decoder):
    st, ss, code, reason = asyncio.run(_raw_session(decoder, [b"\x00" * 1000]))
    assert st.invalid.get("oversize") == 1 and code is None
    st, ss, code, reason = asyncio.run(_raw_session(decoder, [b"\x00" * 100_000]))
    assert code == 1009


def test_flood_is_limited_and_closed(decoder):
    msgs = [encode_audio(i, 0, bytes(8)) for i in range(600)]
    st, ss, code, reason = asyncio.run(_raw_session(decoder, msgs))
    assert st.invalid.get("rate", 0) > 0 and code == 1008 and "rate" in reason


def test_busy_receiver_refuses_a_second_caller(decoder):
    async def go():
        core = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
        srv = await ReceiverServer(core).start()
        try:
            async with connect(srv.uri) as a:
                await a.send(encode_hello(1))
                await asyncio.sleep(0.05)
                async with connect(srv.uri) as b:
                    await asyncio.wait_for(b.wait_closed(), 2)
                    return b.close_code, b.close_reason, srv.snapshot()
        finally:
            await srv.stop()

    code, reason, ss = asyncio.run(go())
    assert code == 1013 and "busy" in reason and ss.refused_busy == 1


def test_token(clip, decoder):
    y, st, *_ = asyncio.run(call(clip[:6400], decoder, token="s3cret", server_token="s3cret"))
    assert st.received == 10
    with pytest.raises(SenderError, match="401"):
        asyncio.run(call(clip[:6400], decoder, token="wrong", server_token="s3cret"))

    async def raw():
        core = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
        srv = await ReceiverServer(core, token="s3cret").start()
        try:
            with pytest.raises(InvalidStatus) as exc:
                async with connect(srv.uri, additional_headers={TOKEN_HEADER: "nope"}):
                    pass
            return exc.value.response.status_code, srv.snapshot()
        finally:
            await srv.stop()

    status, ss = asyncio.run(raw())
    assert status == 401 and ss.refused_token == 1


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    r = subprocess.run([sys.executable, "-m", "pnsc", "cert", str(d / "rx")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fp = r.stdout.split("fingerprint:")[1].strip()
    return str(d / "rx.crt"), str(d / "rx.key"), fp


def test_wss_with_pinned_certificate_and_plain_ws_refused(clip, decoder, cert, tmp_path):
    crt, key, fp = cert

    async def go():
        core = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
        srv = await ReceiverServer(core, ssl_context=server_ssl_context(crt, key)).start()
        try:
            with pytest.raises(Exception):  # plain ws:// to a wss:// server: no websocket
                async with connect(f"ws://127.0.0.1:{srv.port}", open_timeout=2):
                    pass
            sc = SenderCore(SenderConfig(group=0), sid=3)
            st = await SenderClient(srv.uri, sc, cafile=crt, pin=fp, pace=False).run(
                FileSource(pcm=clip[:6400], pace=False), wait_connected=3)
            await asyncio.sleep(0.1)
            # another certificate does not verify: fatal, clear error
            r = subprocess.run([sys.executable, "-m", "pnsc", "cert", str(tmp_path / "other")], capture_output=True)
            assert r.returncode == 0
            with pytest.raises(SenderError, match="certificate"):
                await SenderClient(srv.uri, SenderCore(SenderConfig(group=0)), cafile=str(tmp_path / "other.crt"),
                                   pace=False).run(FileSource(pcm=clip[:640], pace=False), wait_connected=2)
            return st, core.snapshot()
        finally:
            await srv.stop()

    sst, st = asyncio.run(go())
    assert sst.sent >= 10 and st.received == 10


def test_cli_send_receive_and_errors(clip, tmp_path):
    import soundfile as sf

    wav = tmp_path / "in.wav"
    sf.write(wav, clip[:8000], 16000)
    out = tmp_path / "out.wav"
    rx = subprocess.Popen([sys.executable, "-m", "pnsc", "receive", "--listen", "127.0.0.1:0", "--output", str(out),
                           "--no-pace", "--once", "--json-stats", str(tmp_path / "s.json")],
                          stderr=subprocess.PIPE, text=True)
    try:
        line = rx.stderr.readline()
        assert "listening on ws://127.0.0.1:" in line, line
        uri = line.split("listening on ")[1].split()[0]
        r = subprocess.run([sys.executable, "-m", "pnsc", "send", "--to", uri, "--input", str(wav), "--no-pace",
                            "--group", "1", "--loss", "0.1", "--seed", "2"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert rx.wait(30) == 0
    finally:
        if rx.poll() is None:
            rx.kill()
    y, sr = sf.read(out, dtype="int16")
    assert sr == 16000 and len(y) == 13 * 640
    import json

    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["receiver"]["decoder"] == "plpcnet-s-g1"
    for argv in (["receive", "--listen", "nope"], ["send", "--to", "ftp://x", "--input", str(wav)],
                 ["send", "--to", "ws://127.0.0.1:1", "--input", str(wav), "--loss", "2"],
                 ["send", "--to", "ws://127.0.0.1:1", "--input", str(tmp_path / "missing.wav")],
                 ["netem", "--listen", "127.0.0.1:0", "--to", "ws://127.0.0.1:1", "--reorder", "-1"]):
        r = subprocess.run([sys.executable, "-m", "pnsc", *argv], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stderr.startswith("pnsc: error:") and "Traceback" not in r.stderr, r.stderr


def test_cli_receive_with_postfilter(clip, tmp_path):
    """`pnsc receive --postfilter 0.7,0.85,0` takes a lossy call (concealment on) and writes the filtered audio."""
    import json

    import soundfile as sf

    wav = tmp_path / "in.wav"
    sf.write(wav, clip[:8000], 16000)
    outs = {}
    for spec in ("off", "0.7,0.85,0"):
        out = tmp_path / f"out-{spec}.wav"
        rx = subprocess.Popen([sys.executable, "-m", "pnsc", "receive", "--listen", "127.0.0.1:0", "--output",
                               str(out), "--no-pace", "--once", "--json-stats", str(tmp_path / "s.json"),
                               "--postfilter", spec], stderr=subprocess.PIPE, text=True)
        try:
            line = rx.stderr.readline()
            assert "listening on ws://127.0.0.1:" in line, line
            assert ("formant postfilter 0.7/0.85/0" in line) == (spec != "off"), line
            uri = line.split("listening on ")[1].split()[0]
            r = subprocess.run([sys.executable, "-m", "pnsc", "send", "--to", uri, "--input", str(wav), "--no-pace",
                                "--group", "1", "--loss", "0.1", "--seed", "2", "--redundancy", "0"], capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert rx.wait(30) == 0
        finally:
            if rx.poll() is None:
                rx.kill()
        stats = json.loads((tmp_path / "s.json").read_text())["receiver"]
        assert stats["postfilter"] == ("" if spec == "off" else "0.7,0.85,0")
        assert stats["decoder"] == "plpcnet-s-g1" and stats["concealed_frames"] > 0
        outs[spec], sr = sf.read(out, dtype="int16")
        assert sr == 16000 and len(outs[spec]) == 13 * 640 and np.abs(outs[spec]).max() > 1000
    assert np.mean(outs["off"] != outs["0.7,0.85,0"]) > 0.5


def test_realtime_call_through_the_netem_proxy(clip, decoder, tmp_path):
    """Paced sender -> `pnsc netem` proxy (jitter, loss) -> realtime receiver writing a WAV in real time."""
    import soundfile as sf

    from pnsc.commands.netem import NetemProxy
    from pnsc.receiver.playback import RealtimeWavPlayback

    async def go():
        core = ReceiverCore(ReceiverConfig(mode="realtime"), decoder=decoder)
        srv = await ReceiverServer(core).start()
        play = RealtimeWavPlayback(core, tmp_path / "rt.wav").start()
        proxy = await NetemProxy(srv.uri, Impairments(jitter=15, loss=0.1, seed=1)).start("127.0.0.1", 0)
        try:
            sc = SenderCore(SenderConfig(group=2, redundancy=2), sid=4)
            st = await SenderClient(f"ws://127.0.0.1:{proxy.port}", sc, pace=True).run(
                FileSource(pcm=clip[:16000], pace=True), wait_connected=3)
            await asyncio.sleep(0.4)
            return st, core.snapshot()
        finally:
            await proxy.stop()
            await srv.stop()
            play.close()

    sst, st = asyncio.run(go())
    assert sst.packets == 25 and st.sessions == 1
    assert 15 <= st.received <= 25 and st.received + st.redundancy_recovered + st.lost + st.late >= 20
    assert st.decoder == "plpcnet-s-g2" and st.jb_target_ms > 5
    assert st.mouth_to_ear_ms is not None and 60 < st.mouth_to_ear_ms < 400
    y, sr = sf.read(tmp_path / "rt.wav", dtype="int16")
    assert len(y) >= 16000 and np.abs(y).max() > 1000  # real time: at least the clip's second of audio


def test_cli_two_way_call(clip, tmp_path):
    """Two `pnsc call` processes, each sending a file to the other and recording what it hears."""
    import socket

    import soundfile as sf

    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    wav = tmp_path / "in.wav"
    sf.write(wav, clip[:16000], 16000)
    procs = [subprocess.Popen([sys.executable, "-m", "pnsc", "call", "--listen", f"127.0.0.1:{ports[i]}",
                               "--peer", f"127.0.0.1:{ports[1 - i]}", "--input", str(wav), "--group", "0",
                               "--output", str(tmp_path / f"heard{i}.wav"), "--linger", "1.5",
                               "--token", "t", *(["--postfilter", "0.7,0.85,0"] if i == 0 else [])],
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        errs.append(err)
    # the first one runs the formant postfilter on what it hears and says so
    assert "formant postfilter 0.7/0.85/0" in errs[0] and "postfilter" not in errs[1]
    for i in range(2):
        y, _ = sf.read(tmp_path / f"heard{i}.wav", dtype="int16")
        assert len(y) > 16000 and np.abs(y).max() > 1000


def test_cli_receiver_stops_cleanly_on_sigterm(tmp_path):
    import signal

    import soundfile as sf

    out = tmp_path / "rt.wav"
    rx = subprocess.Popen([sys.executable, "-m", "pnsc", "receive", "--listen", "127.0.0.1:0", "--output", str(out)],
                          stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in rx.stderr.readline()
        rx.send_signal(signal.SIGTERM)
        assert rx.wait(20) == 0
        err = rx.stderr.read()
        assert "Traceback" not in err and "0 packets received" in err
    finally:
        if rx.poll() is None:
            rx.kill()
    y, sr = sf.read(out, dtype="int16")  # a valid (silent) WAV: nobody called
    assert sr == 16000 and not np.any(y)
