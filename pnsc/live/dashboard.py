"""Live terminal view of a call: a rich dashboard on a terminal, a plain periodic line otherwise.

The view polls ``snapshot()`` (a mapping or a dataclass; missing keys show as ``-``) and reads
single keys from the terminal (cbreak mode, restored on exit, also after Ctrl-C):

* ``b``: ``on_ab()``: switch the receiver between the personalized decoder and the same-size baseline;
* ``l``: ``on_loss(percent)``: next injected loss of the cycle 0 -> 10 -> 20 -> 30 -> 0 %;
* ``p``: ``on_postfilter()``: the receiver's formant postfilter on or off;
* ``q``: ``on_quit()``, then the view stops.

Callbacks run on the view's thread; make them thread-safe (e.g. ``loop.call_soon_threadsafe``).

Snapshot keys read (all optional): ``elapsed_s``, ``talker_group``, ``group_confidence``,
``decoder``, ``variant`` ("personalized"/"baseline"), ``postfilter`` ("g_n,g_d,mu" or None), ``payload_bps``, ``wire_bps``,
``packets_sent``, ``packets_received``, ``packets_recovered`` (from redundancy), ``packets_lost``, ``packets_late``, ``packets_concealed``,
``jitter_depth_ms``, ``jitter_target_ms``, ``decoder_rtf``, ``mouth_to_ear_ms``, ``input_dbfs``,
``output_dbfs``, ``loss_percent``, ``burst``, ``jitter_ms``, ``underruns``, ``status``.
"""
from __future__ import annotations

import atexit
import dataclasses
import io
import math
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

LOSS_CYCLE = (0, 10, 20, 30)
METER_FLOOR_DB = -60.0
METER_WIDTH = 24


def as_mapping(snapshot: Any) -> Mapping[str, Any]:
    """A snapshot as a mapping (dataclasses are converted, ``None`` gives an empty mapping)."""
    if snapshot is None:
        return {}
    if dataclasses.is_dataclass(snapshot) and not isinstance(snapshot, type):
        return dataclasses.asdict(snapshot)
    if isinstance(snapshot, Mapping):
        return snapshot
    raise TypeError(f"a stats snapshot must be a mapping or a dataclass, got {type(snapshot).__name__}")


def next_loss_percent(current: float | None) -> int:
    """The injected loss after ``current`` in the cycle 0 -> 10 -> 20 -> 30 -> 0 (%)."""
    if current is None:
        return LOSS_CYCLE[1]
    for p in LOSS_CYCLE:
        if p > current + 1e-6:
            return p
    return LOSS_CYCLE[0]


# -- formatting ---------------------------------------------------------------------------------
def _num(v: Any, fmt: str, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if fmt == "d" and isinstance(v, float):
        v = int(round(v))
    try:
        return f"{v:{fmt}}{unit}"
    except (TypeError, ValueError):  # a snapshot value of an unexpected type: show it as it is
        return f"{v}{unit}"


def meter(dbfs: float | None, width: int = METER_WIDTH) -> str:
    """A level bar: ``width`` cells from -60 dBFS (empty) to 0 dBFS (full), then the value."""
    if dbfs is None or math.isnan(dbfs):
        return "." * width + "     - dBFS"
    frac = min(1.0, max(0.0, (dbfs - METER_FLOOR_DB) / -METER_FLOOR_DB))
    full = int(round(frac * width))
    return "#" * full + "." * (width - full) + f" {max(dbfs, -99.0):5.1f} dBFS"


def group_text(s: Mapping[str, Any]) -> str:
    g = s.get("talker_group")
    if g is None:
        return "deciding (needs ~3 s of speech)"
    return f"{g}  (confidence {_num(s.get('group_confidence'), '.2f')})"


def decoder_text(s: Mapping[str, Any]) -> str:
    name = s.get("decoder") or "-"
    variant = s.get("variant")
    text = f"{name}  [{variant}]" if variant else str(name)
    pf = s.get("postfilter")
    return text + (f"  + formant postfilter {str(pf).replace(',', '/')}" if pf else "")


def impairment_text(s: Mapping[str, Any]) -> str:
    burst = s.get("burst")
    kind = "" if burst is None else ", independent losses" if burst <= 1 else f", bursts of {burst:g} on average"
    return f"loss {_num(s.get('loss_percent'), '.0f', ' %')}{kind}, jitter {_num(s.get('jitter_ms'), 'g', ' ms')}"


def packets_text(s: Mapping[str, Any]) -> str:
    return (f"sent {_num(s.get('packets_sent'), 'd')}  received {_num(s.get('packets_received'), 'd')}  "
            f"recovered {_num(s.get('packets_recovered'), 'd')}  lost {_num(s.get('packets_lost'), 'd')}  "
            f"late {_num(s.get('packets_late'), 'd')}  concealed {_num(s.get('packets_concealed'), 'd')}")


def rows(snapshot: Any) -> list[tuple[str, str]]:
    """The dashboard's (label, value) rows for a snapshot."""
    s = as_mapping(snapshot)
    return [
        ("call time", _num(s.get("elapsed_s"), ".1f", " s") + (f"   {s['status']}" if s.get("status") else "")),
        ("talker group", group_text(s)),
        ("decoder", decoder_text(s)),
        ("bitrate", f"payload {_num(s.get('payload_bps'), '.0f', ' b/s')}, "
                    f"on the wire {_num(s.get('wire_bps'), '.0f', ' b/s')}"),
        ("injected", impairment_text(s)),
        ("packets", packets_text(s)),
        ("jitter buffer", f"depth {_num(s.get('jitter_depth_ms'), '.0f', ' ms')} / target "
                          f"{_num(s.get('jitter_target_ms'), '.0f', ' ms')}   underruns {_num(s.get('underruns'), 'd')}"),
        ("decoder RTF", _num(s.get("decoder_rtf"), ".3f") + "  (1.0 = just real time)"),
        ("mouth-to-ear", _num(s.get("mouth_to_ear_ms"), ".0f", " ms") + "  (estimated)"),
        ("input level", meter(s.get("input_dbfs"))),
        ("output level", meter(s.get("output_dbfs"))),
    ]


KEYS_HELP = "[b] personalized <-> baseline   [p] postfilter on/off   [l] loss 0/10/20/30 %   [q] quit"


def plain_line(snapshot: Any) -> str:
    """One line per update for logs and pipes."""
    s = as_mapping(snapshot)
    g = s.get("talker_group")
    return (f"t={_num(s.get('elapsed_s'), '.1f', 's')} group={'-' if g is None else g}"
            f"({_num(s.get('group_confidence'), '.2f')}) decoder={s.get('decoder') or '-'} "
            f"payload={_num(s.get('payload_bps'), '.0f')}b/s wire={_num(s.get('wire_bps'), '.0f')}b/s "
            f"sent={_num(s.get('packets_sent'), 'd')} lost={_num(s.get('packets_lost'), 'd')} "
            f"late={_num(s.get('packets_late'), 'd')} concealed={_num(s.get('packets_concealed'), 'd')} "
            f"jb={_num(s.get('jitter_depth_ms'), '.0f')}/{_num(s.get('jitter_target_ms'), '.0f')}ms "
            f"rtf={_num(s.get('decoder_rtf'), '.3f')} m2e={_num(s.get('mouth_to_ear_ms'), '.0f')}ms "
            f"in={_num(s.get('input_dbfs'), '.1f')}dBFS out={_num(s.get('output_dbfs'), '.1f')}dBFS "
            f"loss={_num(s.get('loss_percent'), '.0f')}%")


def renderable(snapshot: Any, title: str = "pnsc call", keys: bool = True):
    """The rich renderable of one dashboard frame."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(no_wrap=True)
    for label, value in rows(snapshot):
        table.add_row(Text(label), Text(value))  # Text: values are not parsed as markup
    if keys:
        table.add_row(Text("keys"), Text(KEYS_HELP, style="bold"))
    return Panel(table, title=Text(title), expand=False)


def frame_text(snapshot: Any, title: str = "pnsc call", width: int = 100) -> str:
    """One dashboard frame as plain text (what the terminal shows, without colours)."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(renderable(snapshot, title))
    return console.file.getvalue()


# -- the view -----------------------------------------------------------------------------------
class Dashboard:
    """Polls ``snapshot`` every ``interval`` s on its own thread; a rich view on a TTY, lines otherwise.

    Use as a context manager or ``start()`` / ``stop()``; ``wait()`` blocks until ``q`` (or stop).
    """

    def __init__(self, snapshot: Callable[[], Any], on_ab: Callable[[], None] | None = None,
                 on_loss: Callable[[int], None] | None = None, on_quit: Callable[[], None] | None = None,
                 on_postfilter: Callable[[], None] | None = None, interval: float = 0.25, plain_interval: float = 1.0, title: str = "pnsc call",
                 stream: TextIO | None = None, stdin: TextIO | None = None, interactive: bool | None = None):
        self.snapshot = snapshot
        self.on_ab, self.on_loss, self.on_quit, self.on_postfilter = on_ab, on_loss, on_quit, on_postfilter
        self.interval, self.plain_interval, self.title = interval, plain_interval, title
        self.stream = stream if stream is not None else sys.stdout
        self.stdin = stdin if stdin is not None else sys.stdin
        if interactive is None:
            interactive = _isatty(self.stream) and _isatty(self.stdin)
        self.interactive = interactive
        self.quit_requested = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_tty: list | None = None
        self._error: BaseException | None = None

    # lifecycle
    def start(self) -> "Dashboard":
        if self._thread is not None:
            raise RuntimeError("dashboard already started")
        if self.interactive:
            self._enter_cbreak()
        target = self._run_rich if self.interactive else self._run_plain
        self._thread = threading.Thread(target=self._guard, args=(target,), name="pnsc-dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the view (final frame or line stays on screen) and restore the terminal."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._restore_tty()
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``q`` was pressed or the view stopped; True if ``q`` was pressed."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set() and not self.quit_requested.is_set():
            if end is not None and time.monotonic() >= end:
                break
            time.sleep(0.05)
        return self.quit_requested.is_set()

    def __enter__(self) -> "Dashboard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # keys
    def handle_key(self, key: str) -> None:
        """Act on one key press (``b``, ``p``, ``l`` or ``q``, any case); other keys are ignored."""
        key = key.lower()
        if key == "b" and self.on_ab is not None:
            self.on_ab()
        elif key == "p" and self.on_postfilter is not None:
            self.on_postfilter()
        elif key == "l" and self.on_loss is not None:
            current = as_mapping(self.snapshot()).get("loss_percent")
            self.on_loss(next_loss_percent(current))
        elif key == "q":
            self.quit_requested.set()
            if self.on_quit is not None:
                self.on_quit()
            self._stop.set()

    # internals
    def _guard(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # reported by stop()
            self._error = exc
            self._stop.set()

    def _run_plain(self) -> None:
        next_t = 0.0
        while True:
            now = time.monotonic()
            stopping = self._stop.is_set()
            if now >= next_t or stopping:
                print(plain_line(self.snapshot()), file=self.stream, flush=True)
                next_t = now + self.plain_interval
            if stopping:
                return
            self._stop.wait(min(self.interval, max(0.0, next_t - now)))

    def _run_rich(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream)
        fd = self.stdin.fileno()
        with Live(renderable(self.snapshot(), self.title), console=console, auto_refresh=False,
                  redirect_stdout=False, redirect_stderr=False, transient=False) as live:
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], self.interval)
                if ready:
                    data = os.read(fd, 32)
                    if not data:  # the terminal went away
                        break
                    for ch in data.decode("utf-8", "ignore"):
                        self.handle_key(ch)
                live.update(renderable(self.snapshot(), self.title), refresh=True)
            live.update(renderable(self.snapshot(), self.title, keys=False), refresh=True)

    def _enter_cbreak(self) -> None:
        import termios
        import tty

        fd = self.stdin.fileno()
        self._saved_tty = termios.tcgetattr(fd)
        atexit.register(self._restore_tty)  # also when the program ends without stop()
        tty.setcbreak(fd, termios.TCSANOW)

    def _restore_tty(self) -> None:
        if self._saved_tty is None:
            return
        import termios

        try:
            termios.tcsetattr(self.stdin.fileno(), termios.TCSADRAIN, self._saved_tty)
        except (termios.error, ValueError, OSError):
            pass  # the terminal is gone
        finally:
            self._saved_tty = None
            atexit.unregister(self._restore_tty)


def _isatty(f: Any) -> bool:
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError, OSError):
        return False
