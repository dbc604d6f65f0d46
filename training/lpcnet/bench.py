"""Training-step throughput of LPCNet on random data (no example shards needed).

    python -m pnsc.training.lpcnet.bench --size S --batch 256 --steps 12 [--procs 1] [--amp bf16] [--device cuda]

Prints one line per configuration: seconds per step, audio-hours per minute (15-frame sequences,
2400 predicted samples each), peak GPU memory.  ``--procs N`` runs N copies at once (separate
processes, as ``training.lpcnet.multi`` does) and reports their sum, to see how many models share one
GPU well.  Several --size / --batch values may be given (comma lists).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from .model import LPCNet, config_for
from .noise import make_inputs

T = 15


def one(size: str, batch: int, steps: int, amp: str, device: str) -> dict:
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    model = LPCNet(config_for(size)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]
    g = torch.Generator(device=dev).manual_seed(1)
    feats = torch.randn(batch, T + 4, 20, device=dev, generator=g)
    feats[..., 18] = 100.0
    feats[..., 19] = 0.5
    signal = (torch.randn(batch, (T + 1) * 160, device=dev, generator=g) * 2000).to(torch.int16)
    lpc = torch.zeros(batch, T, 16, device=dev)
    lpc[..., 0] = 0.9
    times = []
    for i in range(steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sig, pred, exc, target = make_inputs(signal, lpc, noise=True, generator=g)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = model(feats, sig, pred, exc, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-2)
        opt.step()
        float(loss.detach())
        times.append(time.perf_counter() - t0)
    warm = times[2:] if len(times) > 4 else times[1:] or times
    step = sum(warm) / len(warm)
    mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else 0.0
    return {"size": size, "batch": batch, "amp": amp, "step_s": round(step, 4),
            "audio_h_per_min": round(batch * T * 160 / 16000 / 3600 / (step / 60), 3), "peak_gib": round(mem, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="S")
    ap.add_argument("--batch", default="256")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "none"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true", help="one JSON line per result (used with --procs)")
    a = ap.parse_args(argv)
    for size in a.size.split(","):
        for batch in map(int, a.batch.split(",")):
            if a.procs > 1:
                cmd = [sys.executable, "-m", "pnsc.training.lpcnet.bench", "--size", size, "--batch", str(batch),
                       "--steps", str(a.steps), "--amp", a.amp, "--device", a.device, "--json"]
                ps = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(a.procs)]
                res = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in ps]
                tot = sum(r["audio_h_per_min"] for r in res)
                print(f"{size} batch {batch} x{a.procs} procs: {tot:.2f} audio-h/min total, "
                      f"step {max(r['step_s'] for r in res):.3f} s, peak {max(r['peak_gib'] for r in res):.1f} GiB each",
                      flush=True)
            else:
                r = one(size, batch, a.steps, a.amp, a.device)
                print(json.dumps(r) if a.json else
                      f"{size} batch {batch} {a.amp}: step {r['step_s']:.3f} s, {r['audio_h_per_min']:.3f} audio-h/min, "
                      f"peak {r['peak_gib']:.1f} GiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
