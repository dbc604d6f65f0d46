"""Is one batch of N the same step as two batches of N/2? A check of the training pass's numerics at a batch size.

The mean loss of a batch is the mean of its halves' losses, and its gradient the mean of theirs: whatever the
batch, the training pass computes the same function. Three runs of batch 1024 (rounds 9, 20, 21) validated and
decoded worse than batch 512 from the same start, the last at the same learning rate; this tells a kernel that
computes something else at the larger size (cuDNN's GRU picks its algorithm by shape) from an optimisation
effect. It evaluates one batch of ``--batch`` sequences of real examples with a run's weights, whole and as two
halves, and reports per parameter tensor the relative difference of the gradients, beside the same measure
between two evaluations of one half (the pass's own run-to-run noise) and between the half in the autocast
dtype and in float32 (what bf16 alone costs):

    python -m pnsc.training.lpcnet.batch_check --run runs/gpu/lpcnet-bl-s --data data/ex/tg1p1 \\
        --batch 1024 --device cuda [--json OUT.json]

A ``whole_vs_halves`` far above ``repeat`` and near or above ``autocast_vs_fp32`` on some tensor marks the
batch size at which that tensor's gradient changes.

With an autocast dtype the whole batch is also evaluated in float32 (TF32 matmuls on CUDA, as train.py allows):
``autocast_vs_fp32_whole`` is what the autocast pass costs at the training batch itself, and
``fp32_whole_vs_halves`` tells whether the float32 pass is batch-invariant where the autocast one is not (round
22's check on an H100: bf16 GRU-A and frame-network gradients 20-40 % from float32 at 256 sequences, 50-85 %
at 512, and the whole batch of 1024 100-200 % from its halves). ``--impl`` picks the training path
(:data:`.model.IMPLS`; ``fold`` keeps GRU-A's input gates in float32 and recomputes its recurrence).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .checkpoints import run_checkpoint
from .data import ShardSet
from .model import IMPLS, LPCNet, load_checkpoint
from .noise import make_inputs


def load_run(run: Path, device: torch.device) -> LPCNet:
    """The weights a run ships (best.pt, else last.pt; averaged when it has them)."""
    model, _ = load_checkpoint(run_checkpoint(run) or run / "last.pt")
    return model.to(device).train()


def _pass(model, feats, sig, pred, exc, target, ltp, amp_dtype):
    model.zero_grad(set_to_none=True)
    with torch.autocast(feats.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss = model(feats, sig, pred, exc, target, ltp=ltp)
    loss.backward()
    return float(loss.detach()), {n: p.grad.detach().float().clone() for n, p in model.named_parameters()
                                  if p.grad is not None}


def rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    """||a - b|| / ||b|| per tensor."""
    return {n: float((a[n] - b[n]).norm() / b[n].norm().clamp_min(1e-30)) for n in b}


def check(model: LPCNet, batch: dict, feat_key: str = "qfeatures", amp_dtype=None, seed: int = 0) -> dict:
    """Whole batch against the mean of its two halves, with the noise floor and the autocast cost beside it."""
    n = batch["signal"].shape[0]
    if n < 2 or n % 2:
        raise ValueError(f"batch {n}: needs an even number of sequences")
    dev = batch["signal"].device
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    sig, pred, exc, target, *ltp = make_inputs(batch["signal"], batch["lpc"], noise=True, generator=g,
                                               features=batch[feat_key], ltp_taps=model.cfg.ltp_taps,
                                               ltp_gate=model.cfg.ltp_gate)
    ltp = ltp[0] if ltp else None
    feats = batch[feat_key]
    parts = [slice(0, n // 2), slice(n // 2, n)]

    def run(sl: slice, dtype):
        return _pass(model, feats[sl], sig[sl], pred[sl], exc[sl], target[sl],
                     None if ltp is None else ltp[sl], dtype)

    whole_loss, whole = run(slice(0, n), amp_dtype)
    halves = [run(sl, amp_dtype) for sl in parts]
    again = run(parts[0], amp_dtype)[1]
    out = {"batch": n, "amp": str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "none",
           "impl": getattr(model, "impl", None),
           "loss_whole": whole_loss, "loss_halves_mean": (halves[0][0] + halves[1][0]) / 2,
           "whole_vs_halves": rel(whole, _mean(halves)), "repeat": rel(again, halves[0][1])}
    if amp_dtype is not None:  # the same batch in float32: what the autocast dtype costs, whole and halved
        loss32, whole32 = run(slice(0, n), None)
        halves32 = [run(parts[0], None), run(parts[1], None)]
        out["loss_whole_fp32"] = loss32
        out["autocast_vs_fp32"] = rel(halves[0][1], halves32[0][1])
        out["autocast_vs_fp32_whole"] = rel(whole, whole32)
        out["fp32_whole_vs_halves"] = rel(whole32, _mean(halves32))
    return out


# the per-tensor measures a check reports, in the order they are printed (the float32 ones need an autocast dtype)
MEASURES = ("whole_vs_halves", "repeat", "autocast_vs_fp32", "autocast_vs_fp32_whole", "fp32_whole_vs_halves")


def _mean(halves: list[tuple[float, dict[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """The mean of two passes' gradients, per tensor."""
    (_, a), (_, b) = halves
    return {k: (a[k] + b[k]) / 2 for k in a}


def summary(out: dict) -> list[str]:
    """Lines a person reads first: the largest and the median relative difference of each measure."""
    lines = []
    for key in MEASURES:
        if key in out:
            v = sorted(out[key].values())
            worst = max(out[key], key=out[key].get)
            lines.append(f"{key}: median {v[len(v) // 2]:.2e}, largest {worst} {out[key][worst]:.2e}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a run folder (its shipped weights are used)")
    ap.add_argument("--data", required=True, action="append", help="example folder(s), as train.py's --data")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", default="auto", choices=["auto", "bf16", "none"])
    ap.add_argument("--features", default="qfeatures", choices=["qfeatures", "features"])
    ap.add_argument("--impl", default=None, choices=IMPLS, help="training path (default: the model's, "
                    "PNSC_LPCNET_IMPL or fast)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    amp = a.amp if a.amp != "auto" else ("bf16" if dev.type == "cuda" else "none")
    amp_dtype = torch.bfloat16 if amp == "bf16" else None
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as train.py: the algorithms training would pick
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        model = load_run(a.run, dev)
    except (OSError, KeyError) as exc:
        raise SystemExit(f"batch_check: {a.run}: no usable checkpoint ({exc})") from None
    if a.impl:
        model.impl = a.impl
    data = ShardSet(a.data, None, device=dev, seed=a.seed)
    batch = next((b for _, b in data.iter_epoch(0, a.batch)), None)
    if batch is None:
        raise SystemExit(f"batch_check: fewer than {a.batch} sequences in {', '.join(a.data)}")
    out = {"run": str(a.run), **check(model, batch, a.features, amp_dtype, a.seed)}
    worst = max(out["whole_vs_halves"], key=out["whole_vs_halves"].get)
    print(f"batch {out['batch']} ({out['amp']}): loss whole {out['loss_whole']:.6f}, halves {out['loss_halves_mean']:.6f}")
    cols = [c for c in MEASURES if c in out]
    print(f"{'tensor':<34} " + " ".join(f"{c:>22}" for c in cols))
    for k in out["whole_vs_halves"]:
        print(f"{k:<34} " + " ".join(f"{out[c][k]:>22.2e}" for c in cols))
    print(f"largest: {worst} {out['whole_vs_halves'][worst]:.2e}")
    for line in summary(out):
        print(f"summary {out['impl']} batch {out['batch']}: {line}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
