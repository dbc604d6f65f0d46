"""``pnsc demo`` end to end: a real loopback call (websockets on 127.0.0.1, the shipped decoders),
its files and summary, the live view's keys through a pseudo-terminal, and bad options."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pnsc.live.align import envelope_db

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pnsc", "demo", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def envelope_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ea, eb = envelope_db(a), envelope_db(b)
    n = min(len(ea), len(eb))
    ea, eb = np.maximum(ea[:n], ea.max() - 50), np.maximum(eb[:n], eb.max() - 50)
    return float(np.corrcoef(ea, eb)[0, 1])


def test_demo_without_audio_devices_writes_files_and_summary(tmp_path):
    out = tmp_path / "out"
    r = demo("--no-play", "--seconds", "4", "--loss", "0.3", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    # what the user reads: the table and where the files are
    for needle in ("call summary", "payload 1600 b/s", "talker group", "decoders", "jitter buffer", "decoder RTF",
                   "mouth-to-ear", "received.wav", "reference.wav", "call.png", "open received.wav"):
        assert needle in r.stdout, needle
    # without a terminal the live view prints plain lines
    assert "t=" in r.stdout and "decoder=" in r.stdout
    fig = json.loads((out / "summary.json").read_text())
    assert fig["packets_sent"] == 100  # 4 s = 100 packets of 40 ms
    assert fig["payload_bps"] == 1600
    assert fig["netem_dropped"] > 10  # 30 % injected
    assert fig["packets_received"] + fig["netem_dropped"] == fig["packets_sent"]
    assert fig["packets_concealed"] > 0
    assert fig["packets_concealed"] == fig["packets_lost"] + fig["packets_late"]
    assert fig["packets_recovered"] + fig["packets_concealed"] <= fig["netem_dropped"]
    assert fig["wire_bps"] > fig["payload_bps"]
    assert fig["mouth_to_ear_ms"] is not None and 0 < fig["mouth_to_ear_ms"] < 1000
    assert 0 < fig["decoder_rtf"] < 1
    ref, sr = sf.read(out / "reference.wav")
    rec, sr2 = sf.read(out / "received.wav")
    assert sr == sr2 == 16000 and len(ref) == len(rec) == 4 * 16000
    assert envelope_correlation(ref, rec) > 0.5  # the received speech follows the sent speech
    assert (out / "call.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_personalized_decoder_follows_the_classifier(tmp_path):
    r = demo("--no-play", "--input", str(REPO / "samples" / "1998-15444-0006.flac"), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    fig = json.loads((tmp_path / "summary.json").read_text())
    g = fig["talker_group"]
    assert g is not None
    # generic decoder until the group is known, then that group's personalized decoder
    assert fig["decoders"].startswith("lpcnet-bl-s 0.0-")
    assert f"plpcnet-s-g{g} " in fig["decoders"]
    assert fig["netem_dropped"] == 0
    assert fig["packets_concealed"] <= 3  # no injected loss: at most a late packet when the machine is busy


def test_demo_with_postfilter_says_so(tmp_path):
    r = demo("--no-play", "--seconds", "3", "--postfilter", "0.7,0.85,0", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "formant postfilter 0.7/0.85/0" in r.stderr  # the loading line
    assert "formant postfilter 0.7/0.85/0" in r.stdout  # the summary's decoders line
    fig = json.loads((tmp_path / "summary.json").read_text())
    assert fig["postfilter"] == "0.7,0.85,0" and fig["packets_sent"] == 75
    rec, sr = sf.read(tmp_path / "received.wav")
    assert sr == 16000 and len(rec) == 3 * 16000 and np.abs(rec).max() > 0.01


def _read_until(fd: int, needle: bytes, buf: bytearray, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while needle not in buf:
        left = end - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}: {bytes(buf[-1500:])!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"ended before {needle!r}: {bytes(buf[-1500:])!r}")
            buf.extend(chunk)


def test_demo_keys_in_a_terminal(tmp_path):
    """l raises the injected loss, b switches to the baseline, p turns the postfilter on, q ends the call early;
    the terminal is restored."""
    master, slave = pty.openpty()
    env = dict(ENV, COLUMNS="120", LINES="40", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "pnsc", "demo", "--no-play", "--seconds", "30", "--out",
                             str(tmp_path)], cwd=REPO, stdin=slave, stdout=slave, stderr=slave, env=env)
    import termios

    before = termios.tcgetattr(slave)
    buf = bytearray()
    try:
        _read_until(master, b"loss 0 %", buf)
        _read_until(master, b"payload 1600", buf)  # packets are flowing
        os.write(master, b"l")
        _read_until(master, b"loss 10 %", buf)
        os.write(master, b"l")
        _read_until(master, b"loss 20 %", buf)
        os.write(master, b"b")
        _read_until(master, b"baseline (A/B)", buf)
        os.write(master, b"p")
        _read_until(master, b"formant postfilter 0.7/0.85/0", buf)  # applied by the receiver, then shown
        time.sleep(2.0)  # ~50 packets at 20 % injected loss
        os.write(master, b"q")
        _read_until(master, b"stopped early", buf)
        assert proc.wait(timeout=30) == 0
        after = termios.tcgetattr(slave)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    os.close(slave)
    assert after == before
    fig = json.loads((tmp_path / "summary.json").read_text())
    assert fig["loss_percent"] == pytest.approx(20)
    assert fig["personalized_at_end"] is False
    assert fig["postfilter"] == "0.7,0.85,0"
    assert fig["audio_s"] < 25  # q ended it long before the 30 s
    assert fig["netem_dropped"] > 0


@pytest.mark.parametrize("args,message", [
    (["--loss", "10"], "--loss is a probability 0..1"),
    (["--jitter", "-5"], "--jitter must be"),
    (["--seconds", "0"], "--seconds must be"),
    (["--input", "/nonexistent/talk.wav"], "talk.wav"),
    (["--device", "987", "--seconds", "1"], "cannot use output device"),
])
def test_demo_bad_options_give_one_line_errors(tmp_path, args, message):
    r = demo(*args, "--out", str(tmp_path), timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("pnsc: error: ")
    assert message in r.stderr
    assert "Traceback" not in r.stderr
