#!/usr/bin/env python3
"""Soak benchmark of a loopback call: is the call steady over a long run?

Runs the real call path (:class:`pnsc.live.loopback.LoopbackCall`: websockets on 127.0.0.1, jitter
buffer, concealment, the shipped decoders, a 10 ms wall-clock playout) on the bundled speech, looped,
for ``--minutes`` (default 30), sampling every second: jitter-buffer depth and target, playout
delay, mouth-to-ear estimate, process memory (RSS), underruns, lost / late / concealed packets,
decoder real-time factor. Prints a line a minute and a report at the end:

- jitter-buffer depth: mean of the first and the last fifth of the run, and the least-squares slope
  (ms per minute; a drifting buffer shows a slope, a steady one ~0);
- memory: RSS after the first minute (warm-up) and at the end, slope in MB per hour;
- underruns, packets lost / late / concealed (all should be 0 at 0 % loss), time-scaling counts.

    OMP_NUM_THREADS=1 python scripts/soak_call.py                 # 30 minutes
    OMP_NUM_THREADS=1 python scripts/soak_call.py --minutes 3 --json soak.json
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout without installing


def rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc), None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def slope_per_minute(t_s: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` against time, per minute."""
    if len(t_s) < 3 or np.ptp(t_s) == 0:
        return 0.0
    return float(np.polyfit(t_s / 60.0, y, 1)[0])


def bundled_speech() -> np.ndarray:
    from pnsc.shared.audio import load_audio

    clips = sorted((ROOT / "samples").glob("*.flac"))
    if not clips:
        sys.exit("soak_call: no bundled speech in samples/")
    gap = np.zeros(8000, np.float32)  # 0.5 s between talkers
    return np.concatenate([np.concatenate([load_audio(c, quiet=True), gap]) for c in clips])


def main(argv: list[str] | None = None) -> int:
    from pnsc.live.loopback import LoopbackCall, LoopbackOptions
    from pnsc.sender.capture import FileSource

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--loss", type=float, default=0.0, help="injected loss probability (default 0)")
    ap.add_argument("--jitter", type=float, default=0.0, help="injected jitter, mean ms (default 0)")
    ap.add_argument("--size", choices=("s", "l"), default="s")
    ap.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--json", default=None, help="write the samples and the report here")
    a = ap.parse_args(argv)
    if a.minutes <= 0:
        ap.error("--minutes must be positive")

    speech = bundled_speech()
    seconds = a.minutes * 60.0
    call = LoopbackCall(LoopbackOptions(size=a.size, loss=a.loss, jitter_ms=a.jitter, record=False, tail_s=0.5),
                        source=FileSource(pcm=speech, pace=True, loop=True), max_seconds=seconds, sample_every=None)
    print(f"soak: {a.minutes:g} min loopback call, size {a.size}, loss {a.loss:g}, jitter {a.jitter:g} ms, "
          f"bundled speech looped ({len(speech) / 16000:.1f} s per loop)", flush=True)

    samples: list[dict] = []
    done = threading.Event()

    def sampler() -> None:
        while not call.started and not done.is_set():
            time.sleep(0.05)
        t0 = time.monotonic()
        next_print = 60.0
        while not done.wait(a.sample):
            t = time.monotonic() - t0
            s = call.snapshot()
            samples.append({"t": round(t, 2), "status": s["status"], "jb_ms": s["jitter_depth_ms"],
                            "target_ms": s["jitter_target_ms"], "m2e_ms": s["mouth_to_ear_ms"], "rss_mb": rss_mb(),
                            "underruns": s["underruns"], "lost": s["packets_lost"], "late": s["packets_late"],
                            "concealed": s["packets_concealed"], "rtf": s["decoder_rtf"], "sent": s["packets_sent"],
                            "accelerated": s["accelerated"], "expanded": s["expanded"]})
            if t >= next_print:
                x = samples[-1]
                print(f"  {t / 60:5.1f} min  jb {x['jb_ms']:5.0f} ms (target {x['target_ms']:4.0f})  "
                      f"m2e {x['m2e_ms'] or 0:5.0f} ms  rss {x['rss_mb'] or 0:6.1f} MB  underruns {x['underruns']}  "
                      f"lost {x['lost']}  late {x['late']}  rtf {x['rtf']:.3f}", flush=True)
                next_print += 60.0

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    try:
        result = call.run()
    finally:
        done.set()
        th.join(5.0)
    report = summarize(samples, result.final)
    print(format_report(report), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "report": report, "samples": samples}, indent=1))
        print(f"wrote {a.json}")
    return 0


def summarize(samples: list[dict], final: dict) -> dict:
    play = [s for s in samples if s["status"] == "playing"]
    if len(play) < 5:
        return {"error": "too few samples while playing"}
    t = np.array([s["t"] for s in play])
    jb = np.array([s["jb_ms"] for s in play], dtype=float)
    tgt = np.array([s["target_ms"] for s in play], dtype=float)
    m2e = np.array([s["m2e_ms"] for s in play if s["m2e_ms"] is not None], dtype=float)
    fifth = max(1, len(play) // 5)
    warm = [s for s in play if s["t"] >= min(60.0, t[-1] / 5)]
    rss = np.array([s["rss_mb"] for s in warm if s["rss_mb"] is not None], dtype=float)
    rss_t = np.array([s["t"] for s in warm if s["rss_mb"] is not None], dtype=float)
    return {
        "minutes": round(float(t[-1]) / 60.0, 2),
        "packets_sent": final["packets_sent"],
        "jb_depth_first_fifth_ms": round(float(jb[:fifth].mean()), 1),
        "jb_depth_last_fifth_ms": round(float(jb[-fifth:].mean()), 1),
        "jb_depth_slope_ms_per_min": round(slope_per_minute(t, jb), 3),
        "jb_depth_p5_p95_ms": [round(float(np.percentile(jb, 5)), 1), round(float(np.percentile(jb, 95)), 1)],
        "jb_target_first_last_ms": [round(float(tgt[:fifth].mean()), 1), round(float(tgt[-fifth:].mean()), 1)],
        "mouth_to_ear_median_ms": round(float(np.median(m2e)), 1) if len(m2e) else None,
        "mouth_to_ear_slope_ms_per_min": round(slope_per_minute(t[: len(m2e)], m2e), 3) if len(m2e) == len(t) else None,
        "rss_after_warmup_mb": round(float(rss[0]), 1) if len(rss) else None,
        "rss_end_mb": round(float(rss[-1]), 1) if len(rss) else None,
        "rss_slope_mb_per_hour": round(60.0 * slope_per_minute(rss_t, rss), 2) if len(rss) > 2 else None,
        "underruns": final["underruns"],
        "packets_lost": final["packets_lost"],
        "packets_late": final["packets_late"],
        "packets_concealed": final["packets_concealed"],
        "accelerated_frames": final["accelerated"],
        "expanded_frames": final["expanded"],
        "decoder_rtf": round(float(final["decoder_rtf"]), 4),
    }


def format_report(r: dict) -> str:
    if "error" in r:
        return f"soak: {r['error']}"
    return "\n".join([
        f"soak report ({r['minutes']} min, {r['packets_sent']} packets)",
        f"  jitter-buffer depth   first fifth {r['jb_depth_first_fifth_ms']} ms, last fifth "
        f"{r['jb_depth_last_fifth_ms']} ms, slope {r['jb_depth_slope_ms_per_min']} ms/min, "
        f"p5-p95 {r['jb_depth_p5_p95_ms'][0]}-{r['jb_depth_p5_p95_ms'][1]} ms",
        f"  jitter-buffer target  {r['jb_target_first_last_ms'][0]} -> {r['jb_target_first_last_ms'][1]} ms",
        f"  mouth-to-ear          median {r['mouth_to_ear_median_ms']} ms, slope {r['mouth_to_ear_slope_ms_per_min']} ms/min",
        f"  memory (RSS)          {r['rss_after_warmup_mb']} MB after warm-up -> {r['rss_end_mb']} MB, "
        f"slope {r['rss_slope_mb_per_hour']} MB/h",
        f"  underruns {r['underruns']}, lost {r['packets_lost']}, late {r['packets_late']}, concealed "
        f"{r['packets_concealed']}, time-scaling: {r['accelerated_frames']} frames dropped / "
        f"{r['expanded_frames']} inserted",
        f"  decoder RTF           {r['decoder_rtf']}",
    ])


if __name__ == "__main__":
    sys.exit(main())
