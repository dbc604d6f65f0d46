"""Benchmark of the call (prints numbers; ``--json FILE`` saves them).

1. Mouth-to-ear delay on loopback at 0 % and 10 % loss, split into its parts: a paced sender
   (real-time file capture, 10 ms blocks) -> websockets on 127.0.0.1 -> realtime receiver whose
   playback clock pulls 10 ms every 10 ms (an ideal output device). Per packet (its first sample):
   packet assembly (40 ms), analysis/quantization time, network (loopback + event loop), jitter
   buffer wait, decoder (2-frame lookahead + compute), output block.
2. CPU use of each side: ``pnsc send`` and ``pnsc receive`` as separate processes for a paced call
   (whole-process CPU from rusage, start-up included and measured apart), and the steady-state
   per-component cost (analysis, decoder) from the live stats.
3. Quality of the received audio versus the offline decode of the same packets at 0/5/10/20/30 %
   random and bursty (Gilbert-Elliott, mean burst 3) loss, without and with redundancy (K=2, the
   default), through the real receive path in-process (drain mode: loss, redundancy and
   concealment only). Measures against the offline decode: log-spectral distance (dB, 20 ms
   frames), PESQ-WB / STOI when ``pesq`` / ``pystoi`` are installed (harsh: after a loss the
   sampled decoder takes another noise path, so even a perfect concealment differs in waveform);
   and PESQ-WB / STOI against the input speech (``*_in``; the offline decode's own score is the ceiling).

    OMP_NUM_THREADS=1 python scripts/bench_call.py [--seconds 6] [--files 4] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.receiver.core import ReceiverConfig, ReceiverCore  # noqa: E402
from pnsc.receiver.decoders import open_decoder  # noqa: E402
from pnsc.receiver.server import ReceiverServer  # noqa: E402
from pnsc.sender.capture import FileSource  # noqa: E402
from pnsc.sender.client import SenderClient  # noqa: E402
from pnsc.sender.stream import SenderConfig, SenderCore  # noqa: E402
from pnsc.shared.audio import load_audio  # noqa: E402
from pnsc.shared.netem import Impairments, Netem  # noqa: E402

SR = 16000


def clips(n: int, seconds: float) -> list[tuple[str, np.ndarray]]:
    """Bundled samples first, then held-out test-other excerpts (never training material)."""
    paths = sorted((REPO / "samples").glob("*.flac"))
    shared = Path(os.environ.get("PNSC_SHARED_DIR", REPO.parent / "shared"))
    paths += sorted((shared / "data/librispeech-excerpts/test-other").rglob("*.flac"))
    out, speakers = [], set()
    for p in paths:
        spk = p.stem.split("-")[0]
        if spk in speakers:  # one utterance per talker
            continue
        x = load_audio(p, quiet=True)
        if len(x) >= seconds * SR:
            out.append((p.stem, x[: int(seconds * SR)]))
            speakers.add(spk)
        if len(out) == n:
            break
    return out


# -- 1. delay ---------------------------------------------------------------------------------------
async def _live_call(pcm: np.ndarray, loss: float, decoder) -> tuple[list, object, object]:
    core = ReceiverCore(ReceiverConfig(mode="realtime", trace=True), decoder=decoder)
    srv = await ReceiverServer(core).start()
    stop = threading.Event()

    def clock():  # ideal output device: one 10 ms pull every 10 ms
        t_next = time.monotonic()
        while not stop.is_set():
            core.pull(time.time())
            t_next += 0.010
            stop.wait(max(0.0, t_next - time.monotonic()))

    th = threading.Thread(target=clock, daemon=True)
    th.start()
    sc = SenderCore(SenderConfig(group=1, redundancy=2), sid=1)
    imp = Impairments(loss=loss, seed=5)
    try:
        sst = await SenderClient(srv.uri, sc, pace=True, netem=imp).run(FileSource(pcm=pcm, pace=True),
                                                                         wait_connected=3)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        th.join()
        await srv.stop()
    return core.trace, core.snapshot(), sst


def bench_delay(pcm: np.ndarray, decoder) -> dict:
    res = {}
    for loss in (0.0, 0.10):
        trace, st, sst = asyncio.run(_live_call(pcm, loss, decoder))
        recs = [r for r in trace if r["out"] is not None][10:]  # skip the start-up packets
        enc_ms = sst.analysis_rtf * 40.0
        parts = {
            "packet assembly (40 ms packet, 10 ms capture blocks)": [40.0 for _ in recs],
            "analysis/quantization + send + loopback (measured)": [(r["arrival"] - r["ts"]) * 1e3 - 40.0
                                                                    for r in recs],
            "jitter buffer wait": [(r["taken"] - r["arrival"]) * 1e3 for r in recs],
            "decoder (2-frame lookahead + compute)": [(r["out"] - r["taken"]) * 1e3 for r in recs],
            "output block (10 ms pull)": [10.0 for _ in recs],
        }
        total = [(r["out"] - r["ts"]) * 1e3 + 10.0 for r in recs]
        res[f"{int(loss * 100)}%"] = {
            "parts_median_ms": {k: round(float(np.median(v)), 1) for k, v in parts.items()},
            "total_median_ms": round(float(np.median(total)), 1),
            "total_p95_ms": round(float(np.percentile(total, 95)), 1),
            "analysis_quantization_mean_ms": round(enc_ms, 2),
            "stats_mouth_to_ear_ms": st.mouth_to_ear_ms,
            "jb_target_ms_end": round(st.jb_target_ms, 1),
            "lost": st.lost, "recovered": st.redundancy_recovered, "late": st.late, "received": st.received,
            "accelerated": st.accelerated, "expanded": st.expanded,
        }
    return res


# -- 2. CPU -----------------------------------------------------------------------------------------
def _rusage_cpu(proc: subprocess.Popen) -> tuple[float, float]:
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime, proc.returncode


def bench_cpu(pcm: np.ndarray, tmp: Path) -> dict:
    import soundfile as sf

    wav = tmp / "in.wav"
    sf.write(wav, pcm, SR)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    py = sys.executable
    # start-up alone: imports + codebooks + all S decoders / classifier models
    t = time.time()
    p = subprocess.Popen([py, "-c", "from pnsc.receiver.core import ReceiverCore; ReceiverCore()"], env=env)
    rx_start, _ = _rusage_cpu(p)
    p = subprocess.Popen([py, "-c", "from pnsc.sender.stream import SenderCore; SenderCore()"], env=env)
    tx_start, _ = _rusage_cpu(p)
    del t
    rx = subprocess.Popen([py, "-m", "pnsc", "receive", "--listen", "127.0.0.1:0", "--output", str(tmp / "o.wav"),
                           "--once", "--json-stats", str(tmp / "rx.json")], env=env, stderr=subprocess.PIPE, text=True)
    line = rx.stderr.readline()
    uri = line.split("listening on ")[1].split()[0]
    t0 = time.time()
    tx = subprocess.Popen([py, "-m", "pnsc", "send", "--to", uri, "--input", str(wav), "--json-stats",
                           str(tmp / "tx.json")], env=env, stderr=subprocess.DEVNULL)
    tx_cpu, _ = _rusage_cpu(tx)
    wall = time.time() - t0
    rx_cpu, _ = _rusage_cpu(rx)
    rxs = json.loads((tmp / "rx.json").read_text())["receiver"]
    txs = json.loads((tmp / "tx.json").read_text())["sender"]
    secs = len(pcm) / SR
    return {
        "audio_s": secs, "call_wall_s": round(wall, 2),
        "sender_process_cpu_s": round(tx_cpu, 2), "sender_startup_cpu_s": round(tx_start, 2),
        "sender_cpu_fraction_of_one_core": round(max(0.0, tx_cpu - tx_start) / secs, 4),
        "receiver_process_cpu_s": round(rx_cpu, 2), "receiver_startup_cpu_s": round(rx_start, 2),
        "receiver_cpu_fraction_of_one_core": round(max(0.0, rx_cpu - rx_start) / secs, 4),
        "sender_analysis_rtf_steady": round(txs["analysis_rtf"], 4),
        "receiver_decoder_rtf_steady": round(rxs["decoder_rtf"], 4),
        "decoder": rxs["decoder"], "kernel": rxs["decoder_kernel"],
    }


# -- 3. quality vs loss -----------------------------------------------------------------------------
def lsd_db(ref: np.ndarray, deg: np.ndarray) -> float:
    n = min(len(ref), len(deg)) // 320 * 320
    win = np.hanning(320)

    def spec(x):
        fr = x[:n].astype(np.float64).reshape(-1, 320) * win
        return 10 * np.log10(np.abs(np.fft.rfft(fr, axis=1)) ** 2 + 1e2)

    a, b = spec(ref), spec(deg)
    active = a.mean(axis=1) > a.mean(axis=1).max() - 50  # skip digital silence
    return float(np.mean(np.sqrt(np.mean((a[active] - b[active]) ** 2, axis=1))))


def _metrics(ref: np.ndarray, deg: np.ndarray) -> dict:
    n = min(len(ref), len(deg))  # a loss at the very end is never noticed: pad it as silence
    deg = np.concatenate([deg[:n], np.zeros(len(ref) - n, deg.dtype)])
    out = {"lsd_db": lsd_db(ref, deg)}
    r, d = ref.astype(np.float64) / 32768, deg.astype(np.float64) / 32768
    try:
        from pesq import pesq

        out["pesq_wb"] = float(pesq(SR, r, d, "wb"))
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - pesq refuses some inputs (no utterance detected)
        out["pesq_wb"] = float("nan")
    try:
        from pystoi import stoi

        out["stoi"] = float(stoi(r, d, SR))
    except ImportError:
        pass
    return out


def _received(msgs: list[bytes], imp: Impairments, decoder) -> tuple[np.ndarray, object]:
    core = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
    ne = Netem(imp)
    core.handle(msgs[0], 0.0)
    out = []
    for k, m in enumerate(msgs[1:]):
        for t, mm in ne.process(m, k * 0.04):
            core.handle(mm, t)
        out.append(core.drain())
    out.append(core.finish())
    return np.concatenate(out), core.snapshot()


def bench_quality(files, decoder, losses, bursts, ks) -> dict:
    from pnsc.sender.speaker_classifier import SpeakerClassifier

    clf = SpeakerClassifier()
    table: dict = {}
    base: list = []
    for name, pcm in files:
        group = clf.classify(pcm).group
        msgs_k = {}
        for k in ks:
            s = SenderCore(SenderConfig(group=group, redundancy=k), sid=1)
            msgs_k[k] = [s.hello()] + s.push(pcm, 0.0) + s.flush()
        ref, _ = _received(msgs_k[0], Impairments(), decoder)  # = offline decode of the packets
        clean = np.clip(np.round(pcm * 32768), -32768, 32767).astype(np.int16)
        base.append(_metrics(clean, ref))
        for burst in bursts:
            for loss in losses:
                for k in ks:
                    y, st = _received(msgs_k[k], Impairments(loss=loss, burst=burst, seed=11), decoder)
                    m = _metrics(ref, y)
                    vs_in = _metrics(clean, y)
                    m.update({f"{k}_in": v for k, v in vs_in.items() if k != "lsd_db"})
                    m["lost"] = st.lost / max(1, len(msgs_k[k]) - 1)
                    table.setdefault((burst, loss, k), []).append(m)
        print(f"  {name}: group {group} done", file=sys.stderr, flush=True)
    rows = []
    for (burst, loss, k), ms in sorted(table.items()):
        row = {"pattern": "bursty(3)" if burst else "random", "loss": loss, "K": k}
        for key in ms[0]:
            row[key] = round(float(np.nanmean([m[key] for m in ms])), 3)
        rows.append(row)
    ceiling = {key: round(float(np.nanmean([b[key] for b in base])), 3) for key in base[0]}
    return {"rows": rows, "offline_decode_vs_input": ceiling}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: delay,cpu,quality")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    files = clips(args.files, args.seconds)
    decoder = open_decoder("s")
    print(f"decoder kernel: {decoder.kernel}; clips: {[n for n, _ in files]} x {args.seconds} s", flush=True)
    result: dict = {}
    if "delay" not in skip:
        print("\n== 1. mouth-to-ear delay on loopback (median per packet, ms) ==", flush=True)
        result["delay"] = d = bench_delay(files[0][1], decoder)
        for loss, r in d.items():
            print(f"-- loss {loss}: total median {r['total_median_ms']} ms, p95 {r['total_p95_ms']} ms "
                  f"(jitter-buffer target at the end {r['jb_target_ms_end']} ms; lost {r['lost']}, "
                  f"recovered {r['recovered']}, late {r['late']})")
            for k, v in r["parts_median_ms"].items():
                print(f"   {k:55s} {v:7.1f}")
            print(f"   (of which analysis + quantization, mean: {r['analysis_quantization_mean_ms']} ms; "
                  f"analysis lookahead: 0 ms)")
    if "cpu" not in skip:
        print("\n== 2. CPU use (paced call, separate processes) ==", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            result["cpu"] = c = bench_cpu(files[0][1], Path(tmp))
        for k, v in c.items():
            print(f"   {k:40s} {v}")
    if "quality" not in skip:
        print("\n== 3. received audio vs offline decode of the same packets ==", flush=True)
        result["quality"] = q = bench_quality(files, decoder, (0.0, 0.05, 0.10, 0.20, 0.30), (0.0, 3.0), (0, 2))
        keys = [k for k in q["rows"][0] if k not in ("pattern", "loss", "K")]
        print(f"   {'pattern':10s} {'loss':>5s} {'K':>2s} " + " ".join(f"{k:>8s}" for k in keys))
        for r in q["rows"]:
            print(f"   {r['pattern']:10s} {r['loss']:5.2f} {r['K']:2d} " + " ".join(f"{r[k]:8.3f}" for k in keys))
        print(f"   (offline decode vs the input speech: {q['offline_decode_vs_input']})")
    if args.json:
        p = Path(args.json)
        old = json.loads(p.read_text()) if p.is_file() else {}
        p.write_text(json.dumps({**old, **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
