"""End-of-call summary: figures from a loopback call's snapshots and packet log, as rows and a table."""
from __future__ import annotations

import io
from statistics import median
from typing import Any

from .loopback import PACKET_S, CallResult


def _fmt(v: Any, fmt: str, unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def decoder_timeline(result: CallResult) -> str:
    """e.g. ``lpcnet-bl-s 0.0-4.5 s, plpcnet-s-g1 4.5-8.2 s``."""
    changes = result.packets.decoders
    if not changes:
        return "-"
    last_seq = max(changes[-1][0], int(result.final.get("packets_sent") or 0) - 1)
    parts = []
    for i, (seq, name) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else last_seq + 1
        parts.append(f"{name} {seq * PACKET_S:.1f}-{end * PACKET_S:.1f} s")
    return ", ".join(parts)


def summary_figures(result: CallResult) -> dict:
    """The numbers of the summary table (also written as JSON by the demo)."""
    f = result.final
    playing = [s for _, s in result.history if s.get("status") == "playing"]
    depths = [s["jitter_depth_ms"] for s in playing if s.get("jitter_depth_ms") is not None]
    m2e = [s["mouth_to_ear_ms"] for s in playing if s.get("mouth_to_ear_ms") is not None]
    decided = next((t for t, s in result.history if s.get("talker_group") is not None), None)
    log = result.packets
    made = int(f.get("packets_sent") or 0)
    return {
        "audio_s": round(len(result.sent_pcm) / 16000.0, 2) if len(result.sent_pcm) else round(f["audio_s"], 2),
        "wall_s": round(result.wall_s, 2),
        "payload_bps": f.get("payload_bps"),
        "wire_bps": None if f.get("wire_bps") is None else round(f["wire_bps"]),
        "redundancy": f.get("redundancy"),
        "talker_group": f.get("talker_group"),
        "group_confidence": None if f.get("group_confidence") is None else round(f["group_confidence"], 3),
        "group_decided_after_s": None if decided is None else round(decided, 1),
        "decoders": decoder_timeline(result),
        "postfilter": f.get("postfilter"),  # "g_n,g_d,mu" of the formant postfilter, None = off
        "personalized_at_end": f.get("personalized"),
        "kernel": f.get("kernel"),
        "packets_sent": f.get("packets_sent"),
        "messages_sent": f.get("messages_sent"),
        "netem_dropped": f.get("netem_dropped"),
        "packets_received": f.get("packets_received"),
        "packets_recovered": f.get("packets_recovered"),
        # from the packet events (what was played), not the receiver's counters: these also count a
        # loss at the very end of the stream, which the receiver leaves pending (no later packet came)
        "packets_lost": len(log.seqs("concealed", made)),
        "packets_late": len(log.seqs("late", made)),
        "receiver_counted_lost": f.get("packets_lost"),
        "packets_concealed": len(log.seqs("concealed", made)) + len(log.seqs("late", made)),
        "loss_percent": f.get("loss_percent"),
        "burst": f.get("burst"),
        "jitter_ms": f.get("jitter_ms"),
        "jb_depth_mean_ms": round(sum(depths) / len(depths), 1) if depths else None,
        "jb_depth_max_ms": round(max(depths), 1) if depths else None,
        "jb_target_ms": None if f.get("jitter_target_ms") is None else round(f["jitter_target_ms"], 1),
        "decoder_rtf": None if not f.get("decoder_rtf") else round(f["decoder_rtf"], 4),
        "analysis_rtf": None if not f.get("analysis_rtf") else round(f["analysis_rtf"], 4),
        "mouth_to_ear_ms": round(median(m2e), 1) if m2e else None,
        "underruns": f.get("underruns"),
    }


def summary_rows(fig: dict) -> list[tuple[str, str]]:
    g = fig["talker_group"]
    group = "not decided (too little speech)" if g is None else (
        f"{g} (confidence {_fmt(fig['group_confidence'], '.2f')}, decided after "
        f"{_fmt(fig['group_decided_after_s'], '.1f', ' s')})")
    burst = fig["burst"]
    loss = (f"loss {_fmt(fig['loss_percent'], '.0f', ' %')} "
            f"({'independent' if not burst or burst <= 1 else f'bursts of {burst:g} on average'})") \
        if fig["loss_percent"] else "loss none"
    imp = f"{loss}, jitter {_fmt(fig['jitter_ms'], 'g', ' ms')}"
    return [
        ("duration", f"{fig['audio_s']:.1f} s of speech sent ({fig['wall_s']:.1f} s wall time)"),
        ("bitrate", f"payload {_fmt(fig['payload_bps'], 'd', ' b/s')}, on the wire {_fmt(fig['wire_bps'], 'd', ' b/s')} "
                    f"(websocket + TCP/IP, {fig['redundancy']} redundant packets per message)"),
        ("talker group", group),
        ("decoders", fig["decoders"] + (f"; formant postfilter {fig['postfilter'].replace(',', '/')}"
                                        if fig.get("postfilter") else "")),
        ("injected", imp),
        ("packets", f"sent {fig['packets_sent']}, dropped by the injected loss {fig['netem_dropped']}, "
                    f"received {fig['packets_received']}"),
        ("", f"recovered from redundancy {fig['packets_recovered']}, lost {fig['packets_lost']}, "
             f"late {fig['packets_late']}, concealed {fig['packets_concealed']}"),
        ("jitter buffer", f"depth mean {_fmt(fig['jb_depth_mean_ms'], '.0f', ' ms')}, max "
                          f"{_fmt(fig['jb_depth_max_ms'], '.0f', ' ms')}; target {_fmt(fig['jb_target_ms'], '.0f', ' ms')}"),
        ("decoder RTF", f"{_fmt(fig['decoder_rtf'], '.3f')} ({fig['kernel'] or '-'} kernel; "
                        f"sender analysis {_fmt(fig['analysis_rtf'], '.3f')})"),
        ("mouth-to-ear", f"{_fmt(fig['mouth_to_ear_ms'], '.0f', ' ms')} (median estimate)"),
        ("underruns", _fmt(fig["underruns"], "d")),
    ]


def summary_text(fig: dict, title: str = "pnsc demo: call summary", width: int = 110) -> str:
    """The summary table as plain text."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(summary_table(fig, title))
    return console.file.getvalue()


def summary_table(fig: dict, title: str = "pnsc demo: call summary"):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for label, value in summary_rows(fig):
        t.add_row(Text(label), Text(value))
    return t
