"""The live view: key handling through a real pseudo-terminal, terminal restored, plain lines without a TTY."""
from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from pnsc.live import dashboard as dash

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, termios, time
from pnsc.live.dashboard import Dashboard
log_path = sys.argv[1]
events = []
state = {"elapsed_s": 0.0, "talker_group": 1, "group_confidence": 0.39, "decoder": "plpcnet-s-g1",
         "variant": "personalized", "loss_percent": 0, "packets_sent": 0, "input_dbfs": -23.0}
t0 = time.monotonic()
def snapshot():
    state["elapsed_s"] = time.monotonic() - t0
    state["packets_sent"] = int(state["elapsed_s"] / 0.04)
    return dict(state)
def on_ab():
    state["variant"] = "baseline" if state["variant"] == "personalized" else "personalized"
    events.append(["ab", state["variant"]])
def on_loss(p):
    state["loss_percent"] = p
    events.append(["loss", p])
def on_postfilter():
    state["postfilter"] = None if state.get("postfilter") else "0.7,0.85,0"
    events.append(["postfilter", state["postfilter"]])
def on_quit():
    events.append(["quit"])
before = termios.tcgetattr(0)
d = Dashboard(snapshot, on_ab=on_ab, on_loss=on_loss, on_quit=on_quit, on_postfilter=on_postfilter, interval=0.05)
assert d.interactive
d.start()
during = termios.tcgetattr(0)
pressed = d.wait(timeout=20)
d.stop()
after = termios.tcgetattr(0)
json.dump({"events": events, "pressed_q": pressed, "restored": after == before,
           "cbreak_while_running": not (during[3] & termios.ICANON) and not (during[3] & termios.ECHO)},
          open(log_path, "w"))
print("CHILD-DONE", flush=True)
"""


def _read_until(fd: int, needle: bytes, buf: bytearray, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while needle not in buf:
        left = end - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}; output so far: {bytes(buf[-2000:])!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"child ended before {needle!r}: {bytes(buf[-2000:])!r}")
            buf.extend(chunk)


def test_keys_through_a_pseudo_terminal_and_terminal_restored(tmp_path):
    log = tmp_path / "events.json"
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="110", LINES="40", TERM="xterm-256color")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(log)], cwd=REPO, stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    buf = bytearray()
    try:
        _read_until(master, b"talker group", buf)
        for key, expect in ((b"l", b"loss 10 %"), (b"l", b"loss 20 %"), (b"b", b"[baseline]"), (b"p", b"formant postfilter 0.7/0.85/0"), (b"x", None),
                            (b"L", b"loss 30 %"), (b"l", b"loss 0 %")):
            os.write(master, key)
            if expect is not None:
                _read_until(master, expect, buf)
        os.write(master, b"q")
        _read_until(master, b"CHILD-DONE", buf)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    result = json.loads(log.read_text())
    assert result["events"] == [["loss", 10], ["loss", 20], ["ab", "baseline"], ["postfilter", "0.7,0.85,0"],
                                ["loss", 30], ["loss", 0], ["quit"]]
    assert result["pressed_q"] is True
    assert result["cbreak_while_running"] is True
    assert result["restored"] is True
    text = buf.decode("utf-8", "ignore")
    assert "plpcnet-s-g1" in text and "mouth-to-ear" in text


def test_plain_lines_without_a_terminal():
    out = io.StringIO()
    n = {"i": 0}

    def snapshot():
        n["i"] += 1
        return {"elapsed_s": n["i"] * 0.5, "talker_group": None, "packets_sent": 10 * n["i"], "packets_lost": 1,
                "decoder": "lpcnet-bl-s", "loss_percent": 10}

    d = dash.Dashboard(snapshot, stream=out, stdin=io.StringIO(), interval=0.01, plain_interval=0.05)
    assert not d.interactive
    with d:
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3
    assert all(line.startswith("t=") for line in lines)
    assert "group=-" in lines[0] and "decoder=lpcnet-bl-s" in lines[0] and "loss=10%" in lines[0]
    sent = [int(line.split("sent=")[1].split()[0]) for line in lines]
    assert sent == sorted(sent) and sent[-1] > sent[0]


def test_loss_cycle_and_meter():
    assert [dash.next_loss_percent(p) for p in (None, 0, 10, 20, 30, 5, 45)] == [10, 10, 20, 30, 0, 10, 0]
    assert dash.meter(0.0).startswith("#" * dash.METER_WIDTH)
    assert dash.meter(-60.0).startswith("." * dash.METER_WIDTH)
    assert dash.meter(-30.0).count("#") == dash.METER_WIDTH // 2
    assert "-" in dash.meter(None)


def test_frame_text_shows_every_field():
    snap = {"elapsed_s": 12.3, "talker_group": 2, "group_confidence": 0.31, "decoder": "plpcnet-s-g2",
            "variant": "personalized", "payload_bps": 1600, "wire_bps": 6400, "packets_sent": 300,
            "packets_received": 270, "packets_lost": 30, "packets_late": 2, "packets_concealed": 32,
            "jitter_depth_ms": 80, "jitter_target_ms": 80, "decoder_rtf": 0.42, "mouth_to_ear_ms": 150,
            "input_dbfs": -20.0, "output_dbfs": -22.5, "loss_percent": 10, "burst": 1, "jitter_ms": 0,
            "underruns": 0}
    text = dash.frame_text(snap)
    for needle in ("2  (confidence 0.31)", "plpcnet-s-g2  [personalized]", "payload 1600 b/s", "6400 b/s",
                   "lost 30", "late 2", "concealed 32", "depth 80 ms / target 80 ms", "0.420", "150 ms",
                   "-20.0 dBFS", "-22.5 dBFS", "loss 10 %, independent losses, jitter 0 ms"):
        assert needle in text, needle


def test_odd_value_types_do_not_break_the_view():
    text = dash.frame_text({"packets_sent": 12.0, "burst": 3.0, "decoder_rtf": "n/a", "jitter_ms": 40})
    assert "sent 12 " in text and "bursts of 3 on average" in text and "n/a" in text and "jitter 40 ms" in text


def test_bad_snapshot_type_is_rejected():
    try:
        dash.as_mapping([1, 2])
    except TypeError as exc:
        assert "mapping or a dataclass" in str(exc)
    else:
        raise AssertionError("a list snapshot was accepted")
