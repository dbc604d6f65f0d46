"""Training-step throughput and peak memory of LPCNet on random data (no example shards needed).

    python -m pnsc.training.lpcnet.bench --out bench.json                      # defaults below
    python -m pnsc.training.lpcnet.bench --size S --batch 512,1024,2048,4096 --impl old,fast,fold,foldc \\
        --procs 1,3 --multi-impl fast --steps 5 --amp bf16 --budget-s 180 --out runs/bench_thr.json

Runs, each in fresh processes, per ``--impl`` in the order given: alone at every batch, then, for the
``--multi-impl`` ones, ``--procs N`` > 1 copies at once (separate processes sharing the device, as
``training.lpcnet.multi`` does; their audio-hours per minute are summed).  The processes of a configuration
warm up (2 steps), then time their steps together from one start signal for ``--window-s`` seconds; ``overlap``
reports the share of the timed stretch they all shared (before 2026-11-27 each timed 3-4 steps whenever it got
there, mostly alone, and the sum overstated what processes sharing a GPU deliver).  Audio: 15-frame sequences,
2400 predicted samples each.  Peak memory: CUDA ``max_memory_allocated`` per process on a GPU, peak
resident set size on CPU.  ``--impl``: the model's training path (``fast`` = default, ``old`` = the
first implementation, ``fold`` = folded GRU-A, ``foldc`` = ``fold`` with torch.compile'd cells, the
compile time falling in the 2 warm-up steps; ``scan`` / ``folds`` = ``fast`` / ``fold`` with GRU-B's
recurrence as one Triton kernel, ``training.lpcnet.gru_scan``, whose agreement with cuDNN on the device
is checked first and reported as ``scan_check``).
Defaults: on CUDA size S, batches 512..4096, procs 1 and 3, 6 steps, bf16 autocast; on CPU size tiny,
batches 4 and 8, procs 1 and 2, 4 steps, no autocast.  Runs that do not fit report ``"error": "oom"``;
runs not started when ``--budget-s`` is spent report ``"skipped"``, and a run still going 30 s past it
is killed (``"error": "timeout ..."``), so a call ends by about budget + 40 s.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import gru_scan
from .model import IMPLS, LPCNet, config_for
from .noise import make_inputs

T = 15
BENCH_IMPLS = (*IMPLS, "foldc", "scan", "folds")  # foldc: fold, compiled cells; scan/folds: fast/fold + Triton GRU-B
_BASE = {"foldc": "fold", "scan": "fast", "folds": "fold"}


WARMUP = 2  # untimed steps before a run reports ready (cuDNN autotuning, allocator growth, compilation)


def _wait_for_go(sync_dir: str | None, timeout_s: float = 600.0) -> None:
    """Say ready (a file named by pid) in ``sync_dir`` and wait for the parent's ``go`` file there."""
    if not sync_dir:
        return
    d = Path(sync_dir)
    (d / f"ready-{os.getpid()}").touch()
    t_end = time.monotonic() + timeout_s
    while not (d / "go").exists():
        if time.monotonic() > t_end:
            raise SystemExit("bench: no go signal")
        time.sleep(0.005)


def one(size: str, batch: int, steps: int, amp: str, device: str, impl: str = "fast", frames: int = T,
        sync_dir: str | None = None, window_s: float = 0.0) -> dict:
    """Training steps in this process: ``WARMUP`` untimed, then (after the go signal of ``sync_dir``, so that
    the processes of one configuration time the same stretch of wall time) timed ones, at least
    ``steps - WARMUP`` and until ``window_s`` seconds have passed. ``t0``/``t1`` (``time.monotonic``, one
    clock for every process of the machine) bound the timed steps, for the parent's overlap check."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    check = None
    if gru_scan.requested() == "scan":  # the kernel's agreement with cuDNN on this device, before timing it
        check = {k: float(f"{v:.3g}") for k, v in gru_scan.self_check(str(dev), length=480 if dev.type == "cuda" else 40).items()}
    torch.manual_seed(0)
    model = LPCNet(config_for(size), impl=impl).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]
    g = torch.Generator(device=dev).manual_seed(1)
    feats = torch.randn(batch, frames + 4, 20, device=dev, generator=g)
    feats[..., 18] = 100.0
    feats[..., 19] = 0.5
    signal = (torch.randn(batch, (frames + 1) * 160, device=dev, generator=g) * 2000).to(torch.int16)
    lpc = torch.zeros(batch, frames, 16, device=dev)
    lpc[..., 0] = 0.9

    def train_step() -> float:
        sig, pred, exc, target = make_inputs(signal, lpc, noise=True, generator=g)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = model(feats, sig, pred, exc, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-2)
        opt.step()
        return float(loss.detach())  # syncs

    warmup = min(WARMUP, steps - 1)
    losses = [train_step() for _ in range(warmup)]
    _wait_for_go(sync_dir)
    t0 = time.monotonic()
    timed = 0
    while timed < steps - warmup or time.monotonic() - t0 < window_s:
        losses.append(train_step())
        timed += 1
    t1 = time.monotonic()
    step = (t1 - t0) / timed
    loss = losses[steps - 1]  # after exactly ``steps`` steps: comparable across paths whatever the window
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        reserved = torch.cuda.max_memory_reserved() / 2**30
    else:  # ru_maxrss is KiB on Linux
        peak = reserved = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"size": size, "impl": impl, "batch": batch, "amp": amp, "device": str(dev), "step_s": round(step, 4),
            "audio_h_per_min": _sig(batch * frames * 160 / 16000 / 3600 / (step / 60)),
            "peak_gib": round(peak, 3), "reserved_gib": round(reserved, 3), "loss": round(float(loss), 4),
            "timed_steps": timed, "t0": t0, "t1": t1,
            **({"scan_check": check} if check else {})}


def _sig(x: float) -> float:
    """Six significant digits (a slow CPU run must not round to zero)."""
    return float(f"{x:.6g}")


def run_config(size: str, impl: str, batch: int, procs: int, a, timeout_s: float) -> dict:
    """``procs`` fresh processes of one configuration at once; their summed throughput."""
    with tempfile.TemporaryDirectory(prefix="pnsc-bench-") as sync_dir:
        return _run_synced(size, impl, batch, procs, a, timeout_s, Path(sync_dir))


def _run_synced(size: str, impl: str, batch: int, procs: int, a, timeout_s: float, sync: Path) -> dict:
    """:func:`run_config` with ``sync`` as the folder of the processes' ready files and the go signal."""
    cmd = [sys.executable, "-m", "pnsc.training.lpcnet.bench", "--one", "--size", size, "--impl", impl,
           "--batch", str(batch), "--steps", str(a.steps), "--amp", a.amp, "--device", a.device, "--frames", str(a.frames),
           "--window-s", str(a.window_s), "--sync-dir", str(sync)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    ps = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(procs)]
    rec = {"size": size, "impl": impl, "batch": batch, "procs": procs, "amp": a.amp, "device": a.device}
    t_end = time.monotonic() + timeout_s
    # every process warms up, then all start their timed steps together: unsynchronised, processes that start
    # seconds apart time a few steps each mostly alone, and their sum counts the GPU several times (round 12's
    # "26.6 audio-h/min with 4 processes", 3.8x one process, while training saw 1.6x with 2-3)
    while (len(list(sync.glob("ready-*"))) < procs and time.monotonic() < t_end
           and all(p.poll() is None for p in ps)):
        time.sleep(0.01)
    (sync / "go").touch()
    outs = []
    for p in ps:
        try:
            outs.append(p.communicate(timeout=max(1.0, t_end - time.monotonic())))
        except subprocess.TimeoutExpired:
            for q in ps:
                q.kill()
                q.wait()
            rec["error"] = f"timeout ({timeout_s:.0f} s)"
            return rec
    res = []
    for (out, err), p in zip(outs, ps):
        lines = out.strip().splitlines()
        if p.returncode != 0 or not lines:
            rec["error"] = "oom" if "out of memory" in err.lower() else (err.strip().splitlines() or ["failed"])[-1][-300:]
            return rec
        res.append(json.loads(lines[-1]))
    # the share of each process's timed stretch during which all of them were timing
    common = min(r["t1"] for r in res) - max(r["t0"] for r in res)
    rec["overlap"] = round(max(0.0, common) / max(r["t1"] - r["t0"] for r in res), 3)
    rec.update({"audio_h_per_min": _sig(sum(r["audio_h_per_min"] for r in res)),
                "step_s": max(r["step_s"] for r in res), "peak_gib_each": max(r["peak_gib"] for r in res),
                "reserved_gib_each": max(r["reserved_gib"] for r in res), "runs": res})
    return rec


def _line(r: dict) -> str:
    head = f"{r['size']} {r['impl']:5s} batch {r['batch']:5d} x{r['procs']} procs"
    if "error" in r or "skipped" in r:
        return f"{head}: {r.get('error') or 'skipped (budget)'}"
    return (f"{head}: {r['audio_h_per_min']:8.3f} audio-h/min total, step {r['step_s']:.3f} s, "
            f"peak {r['peak_gib_each']:.2f} GiB each (reserved {r['reserved_gib_each']:.2f}), "
            f"overlap {r['overlap']:.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default=None, help="comma list (default S on CUDA, tiny on CPU)")
    ap.add_argument("--batch", default=None, help="comma list (default 512,1024,2048,4096 on CUDA, 4,8 on CPU)")
    ap.add_argument("--impl", default="old,fast,fold,foldc", help=f"comma list of {BENCH_IMPLS}")
    ap.add_argument("--procs", default=None, help="comma list of process counts (default 1,3 on CUDA, 1,2 on CPU)")
    ap.add_argument("--multi-impl", default="fast", help="the --impl values also run with procs > 1 (comma list)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run, 2 of them warm-up (default 6 CUDA, 4 CPU)")
    ap.add_argument("--amp", default=None, choices=["bf16", "fp16", "none"], help="default bf16 on CUDA, none on CPU")
    ap.add_argument("--budget-s", type=float, default=180.0, help="skip configurations once this much time is spent")
    ap.add_argument("--out", default=None, help="write all results to this JSON file")
    ap.add_argument("--frames", type=int, default=T, help=f"frames per training sequence (training uses {T})")
    ap.add_argument("--window-s", type=float, default=None,
                    help="time at least this many seconds of steps per run, all processes of a configuration at "
                         "once (default 5 on CUDA, 0 on CPU: --steps only)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: one run, one JSON line
    ap.add_argument("--sync-dir", default=None, help=argparse.SUPPRESS)  # internal: the start signal's folder
    a = ap.parse_args(argv)
    cuda = a.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("pnsc: error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    a.size = a.size or ("S" if cuda else "tiny")
    a.batch = a.batch or ("512,1024,2048,4096" if cuda else "4,8")
    a.procs = a.procs or ("1,3" if cuda else "1,2")
    a.steps = a.steps or (6 if cuda else 4)
    a.amp = a.amp or ("bf16" if cuda else "none")
    a.window_s = (5.0 if cuda else 0.0) if a.window_s is None else a.window_s
    try:
        sizes = [config_for(s) and s for s in a.size.split(",")]
        batches = [int(b) for b in a.batch.split(",")]
        procs = [int(p) for p in a.procs.split(",")]
        impls = a.impl.split(",")
        multi = [i for i in a.multi_impl.split(",") if i in impls]
        bad = [i for i in impls + a.multi_impl.split(",") if i not in BENCH_IMPLS]
        if bad or min(batches) < 1 or min(procs) < 1 or a.steps < 1 or a.frames < 1:
            raise ValueError(f"bad --impl {bad}" if bad else "batch, procs, steps and frames must be >= 1")
        if not a.window_s >= 0:
            raise ValueError("--window-s must be >= 0")
    except ValueError as exc:
        print(f"pnsc: error: {exc}", file=sys.stderr)
        return 2
    if a.one:  # the bench name's switches, then the model's training path
        os.environ["PNSC_LPCNET_COMPILE"] = "1" if impls[0] == "foldc" else "0"
        os.environ[gru_scan.ENV] = "scan" if impls[0] in ("scan", "folds") else "cudnn"
        print(json.dumps(one(sizes[0], batches[0], a.steps, a.amp, a.device, _BASE.get(impls[0], impls[0]), a.frames,
                             sync_dir=a.sync_dir, window_s=a.window_s)), flush=True)
        return 0
    t0 = time.monotonic()
    results = []
    # per impl (in --impl order): alone at each batch, then (if in --multi-impl) with procs > 1
    plan = [(size, impl, batch, p) for size in sizes for impl in impls
            for p in (procs if impl in multi else [q for q in procs if q == 1]) for batch in batches]
    for size, impl, batch, p in plan:
        if time.monotonic() - t0 > a.budget_s:
            r = {"size": size, "impl": impl, "batch": batch, "procs": p, "skipped": True}
        else:
            r = run_config(size, impl, batch, p, a, a.budget_s + 30 - (time.monotonic() - t0))
        results.append(r)
        print(_line(r), flush=True)
    summary = {"device_name": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
               "wall_s": round(time.monotonic() - t0, 1), "results": results}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(summary, f, indent=1)
        print(f"bench: wrote {a.out} ({summary['wall_s']} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
