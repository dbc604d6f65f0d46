#!/usr/bin/env python3
"""How large is the noise injected into the teacher-forced past: synthetic (``exc``) against the model's own (``self``).

For validation sequences of an example-shard folder and one checkpoint, builds the noisy past x~ of each
noise domain exactly as training does (training.lpcnet.noise / self_noise; the same feature rows the
training step would use) and prints the injected signal error relative to the signal,
10 log10(sum (x~ - s)^2 / sum s^2) over the predicted samples, pooled over the sequences, for all samples
and for voiced / unvoiced frames (pitch correlation above / below 0.5), plus the RMS error in mu-law
excitation levels (|level of x~ - u against the clean excitation's level|).  ``exc`` is averaged over its
per-sequence random std (scale * U^2).  With ``--time-batch N`` it also times training steps (forward,
backward, Adam) of a fresh model of ``--time-size`` with each domain on this machine.

    python scripts/self_noise_error.py --checkpoint runs/r9/plpcnet-s-g1-ft/last.pt --data data/ex/val \
        [--limit 96] [--features qfeatures] [--exc-scale 6] [--time-batch 4 --time-size S] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _die(msg: str) -> None:
    print(f"pnsc: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def _db(num: float, den: float) -> float:
    return 10.0 * math.log10(num / den) if num > 0 and den > 0 else float("nan")


def measure(model, batches, feat_key: str, exc_scale: float, seed: int) -> dict:
    """Pooled error energies of each domain's noisy past -> dB relative to the signal, and RMS level errors."""
    import torch

    from pnsc.training.lpcnet.model import FRAME_SIZE, lin2ulaw
    from pnsc.training.lpcnet.noise import noisy_signal, predict
    from pnsc.training.lpcnet.self_noise import sample_boost, self_inputs

    acc: dict[str, float] = {}

    def add(key, v):
        acc[key] = acc.get(key, 0.0) + float(v)

    gen = torch.Generator().manual_seed(seed)
    for b in batches:
        s, lpc, feats = b["signal"].float(), b["lpc"].float(), b[feat_key].float()
        voiced = (sample_boost(feats) > 1.25)  # pitch correlation > 0.5
        u = predict(s, lpc)[:, 1:]  # clean prediction of samples 160..
        e_lvl = lin2ulaw(s[:, FRAME_SIZE:] - u)
        sig_e = s[:, FRAME_SIZE:].double() ** 2
        for mask, tag in ((torch.ones_like(voiced), "all"), (voiced, "voiced"), (~voiced, "unvoiced")):
            add(f"signal_{tag}", sig_e[mask].sum())
            add(f"n_{tag}", mask.sum())
        pasts = {"exc": noisy_signal(s, lpc, domain="exc", scale=exc_scale, generator=gen)}
        _, _, pasts["self"] = self_inputs(model, s, lpc, feats, generator=gen, return_draws=True)
        for dom, xn in pasts.items():
            err = (xn[:, FRAME_SIZE:] - s[:, FRAME_SIZE:]).double() ** 2
            lvl = (lin2ulaw(xn[:, FRAME_SIZE:] - u) - e_lvl).double() ** 2
            for mask, tag in ((torch.ones_like(voiced), "all"), (voiced, "voiced"), (~voiced, "unvoiced")):
                add(f"{dom}_err_{tag}", err[mask].sum())
                add(f"{dom}_lvl_{tag}", lvl[mask].sum())
    out: dict = {"samples": int(acc["n_all"]), "voiced_fraction": round(acc["n_voiced"] / acc["n_all"], 3)}
    for dom in ("exc", "self"):
        for tag in ("all", "voiced", "unvoiced"):
            out[f"{dom}_err_db_{tag}"] = round(_db(acc[f"{dom}_err_{tag}"], acc[f"signal_{tag}"]), 2)
            out[f"{dom}_level_rms_{tag}"] = round(math.sqrt(acc[f"{dom}_lvl_{tag}"] / max(1.0, acc[f"n_{tag}"])), 2)
    return out


def time_steps(size: str, batch: dict, feat_key: str, steps: int) -> dict:
    """Seconds per training step (inputs, forward, backward, Adam) of a fresh model with each domain (the
    fastest of ``steps``, after an untimed first step)."""
    import torch

    from pnsc.training.lpcnet.model import LPCNet, config_for
    from pnsc.training.lpcnet.noise import make_inputs
    from pnsc.training.lpcnet.self_noise import self_inputs

    out = {}
    for dom in ("exc", "self", "exc", "self"):  # twice, interleaved: the second round is reported
        torch.manual_seed(0)
        model = LPCNet(config_for(size))
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            if dom == "self":
                sig, pred, exc, target = self_inputs(model, batch["signal"], batch["lpc"], batch[feat_key],
                                                     generator=gen)
            else:
                sig, pred, exc, target = make_inputs(batch["signal"], batch["lpc"], domain="exc", generator=gen)
            loss = model(batch[feat_key], sig, pred, exc, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        times = times[1:]
        out[f"{dom}_step_s"] = round(min(times), 3)  # the fastest: least disturbed on a shared machine
    out["self_overhead"] = round(out["self_step_s"] / out["exc_step_s"] - 1.0, 3)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="a train.py checkpoint (last.pt / best.pt)")
    p.add_argument("--data", type=Path, default=REPO / "data" / "ex" / "val", help="example-shard folder")
    p.add_argument("--limit", type=int, default=96, help="sequences measured")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--features", default="qfeatures", choices=["qfeatures", "features"])
    p.add_argument("--exc-scale", type=float, default=None, help="noise scale of domain exc (default: training's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--time-batch", type=int, default=0, help="also time training steps at this batch (0: no)")
    p.add_argument("--time-size", default="S", choices=["S", "L", "tiny"])
    p.add_argument("--time-steps", type=int, default=4)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    a = p.parse_args(argv)
    if not a.checkpoint.is_file():
        _die(f"{a.checkpoint}: no such checkpoint")
    if a.limit < 1 or a.batch < 1:
        _die("--limit and --batch must be >= 1")
    import torch

    from pnsc.training.lpcnet.data import DataError, ShardSet
    from pnsc.training.lpcnet.model import LPCNet, LPCNetConfig
    from pnsc.training.lpcnet.noise import DEFAULT_NOISE_SCALE

    torch.set_num_threads(a.threads)
    ck = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    model = LPCNet(LPCNetConfig(**ck["config"]))
    model.load_state_dict(ck["model"])
    try:
        data = ShardSet([str(a.data)], None, device=torch.device("cpu"), max_resident_mb=2000, seed=a.seed)
    except DataError as exc:
        _die(str(exc))
    batches, n = [], 0
    for b in data.iter_all(a.batch):
        take = min(len(b["signal"]), a.limit - n)
        batches.append({k: v[:take] for k, v in b.items()})
        n += take
        if n >= a.limit:
            break
    scale = a.exc_scale if a.exc_scale is not None else DEFAULT_NOISE_SCALE["exc"]
    t0 = time.perf_counter()
    res = {"checkpoint": str(a.checkpoint), "name": ck.get("name"), "sequences": n, "features": a.features,
           "exc_scale": scale, **measure(model, batches, a.features, scale, a.seed)}
    res["measure_s"] = round(time.perf_counter() - t0, 1)
    if a.time_batch:
        b = {k: v[:a.time_batch] for k, v in batches[0].items()}
        res["timing"] = {"size": a.time_size, "batch": int(len(b["signal"])), "threads": a.threads,
                         **time_steps(a.time_size, b, a.features, a.time_steps)}
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
