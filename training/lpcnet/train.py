"""Budgeted, resumable LPCNet / PLPCNet training (single process, or DDP under torchrun).

    python -m pnsc.training.lpcnet.train --data DIR --out DIR --size S|L|tiny --group G|all \
        --budget-min 9 --batch 512 [--init-from CKPT] [--quantized-after-epoch K] [--device cuda|cpu] \
        [--sparse-density 0.1 [--sparse-start 200] [--sparse-end 4000] [--sparse-every 100]]

One call trains until its wall-clock budget (or --epochs / --max-steps) is used up, saves
``OUT/last.pt`` (+ ``OUT/last-optim.pt``) and exits 0; the next call with the same OUT continues from
there (same batches and noise as an uninterrupted run).  OUT/status.json says whether training is
finished.  Everything is written to OUT, in files far under 16 MiB: last.pt, last-optim.pt, best.pt,
log.jsonl, history.json, curves.png, status.json.

Training data: sequences of the training speakers (``--splits`` split "train", if a splits file is
given) in group G (``--groups`` map) or all groups.  Validation: the "validation" split's speakers
(of group G for a personalized model), on quantized features by default, with per-group losses and
eq. (3) weighting when a group map is given.

Block sparsity (sparsity.py, LPCNet's 16x1 blocks of GRU-A's recurrent weights): ``--sparse-density D``
ramps the block density from 1 at step --sparse-start to D at --sparse-end (cubic, as LPCNet), recomputing
the mask every --sparse-every steps, then keeps the final mask fixed; pruned weights are zeroed after every
optimizer step.  Steps count from the run's own start (a branch starts at 0).  The mask is saved in last.pt
and restored on resume; the epoch records log ``gru_a_density``.  --sparse-density 1 turns it off.  With
--ema-decay the average's copy of the matrix is pruned with the same mask after every step, so the averaged
weights (the ones that ship) are exactly as sparse as the trained ones.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from . import gru_scan
from .checkpoints import run_checkpoint
from .data import DataError, ShardSet, load_group_map, log, select_speakers
from .ema import WeightAverage, deployed_weights
from .model import IMPLS, LPCNet, config_for, count_parameters, load_checkpoint, teacher_head, widen_for_ltp
from .noise import make_inputs
from .self_noise import self_inputs
from .sparsity import BlockSparsifier, check_settings
from .step_phases import StepPhases

REPO = Path(__file__).resolve().parents[2]
CKPT_VERSION = 1

# Gradient-clipping threshold (global norm) by (size, personalized?): the paper uses 5e-2 .. 1e-4,
# smaller for smaller models and for more speakers.
DEFAULT_CLIP = {("L", True): 5e-2, ("L", False): 1e-2, ("S", True): 1e-2, ("S", False): 1e-3,
                ("tiny", True): 1.0, ("tiny", False): 1.0}


# schedule settings not given on the command line: the saved ones on resume, else these
SCHEDULE_DEFAULTS = {"batch": 512, "lr": 1e-3, "lr_decay": 0.0, "warmup_steps": 0, "ema_decay": 0.0, "adapt": "frame",
                     "val_features": "qfeatures",
                     # GRU-A block sparsity: off (density 1); with a target, a ramp over steps 200..4000 (the
                     # first half of a ~8,000-step branch: three 9-minute GPU calls at batch 512), mask every 100
                     "sparse_density": 1.0, "sparse_start": 200, "sparse_end": 4000, "sparse_every": 100}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, action="append", help="example-shard folder (repeatable)")
    ap.add_argument("--val-data", action="append", help="validation shard folder(s) (default: --data)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="S", choices=["S", "L", "tiny"])
    ap.add_argument("--group", default="all", help="speaker group index, or 'all' (baseline)")
    ap.add_argument("--group-mix", type=float, default=1.0,
                    help="share of a personalized run's epoch that is its group's speech; below 1 every epoch adds "
                         "a fresh draw of the other training speakers' sequences (a fine-tune that keeps "
                         "generalizing to new talkers); validation stays the group's. Default 1: the group only")
    ap.add_argument("--groups", default=None, help="speaker -> group map (default models/speaker_groups.json if present)")
    ap.add_argument("--C", type=int, default=None, help="number of groups to read from the map (default: its default_C)")
    ap.add_argument("--splits", "--speakers-from", dest="splits", default=None,
                    help="speaker splits JSON (default models/speaker_splits.json if present; 'none' = all speakers)")
    ap.add_argument("--budget-min", type=float, default=9.0, help="wall-clock budget of this call (minutes)")
    ap.add_argument("--reserve-s", type=float, default=20.0, help="seconds kept for the final save")
    ap.add_argument("--epochs", type=int, default=120, help="total epochs of the whole training")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps in total")
    ap.add_argument("--patience", type=int, default=0,
                    help="finish the run after this many validations in a row without a new best validation loss, "
                         "ending on its best weights (last.pt = best.pt): a fine-tune on a group with little speech "
                         "stops before it overfits; 0 = off")
    ap.add_argument("--batch", type=int, default=None,
                    help=f"global batch (sequences of 15 frames; default {SCHEDULE_DEFAULTS['batch']}, or as saved)")
    ap.add_argument("--val-batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, help=f"default {SCHEDULE_DEFAULTS['lr']}, or as saved")
    ap.add_argument("--lr-decay", type=float, default=None,
                    help="lr / (1 + decay * step) (LPCNet: 5e-5; default 0, or as saved)")
    ap.add_argument("--warmup-steps", type=int, default=None,
                    help="ramp the lr up linearly over the run's first N steps (fine-tunes and branches start "
                         "at step 0 with fresh Adam moments, whose first steps at full lr undo the start; a run "
                         "resumed without its Adam moments ramps up again the same way; default 0, or as saved)")
    ap.add_argument("--clip", type=float, default=None, help="grad-norm clip (default by size and group)")
    ap.add_argument("--ema-decay", type=float, default=None,
                    help="keep an exponential moving average of the weights with this decay (e.g. 0.999), "
                         "validate it and ship it (last.pt 'ema'); 0: off (default 0, or as saved)")
    ap.add_argument("--init-from", default=None, help="start from this checkpoint's weights (fine-tuning)")
    ap.add_argument("--teacher", default=None,
                    help="distillation: a trained checkpoint (e.g. an L run's best.pt) whose sample distribution the "
                         "run also learns, teacher-forced on the same batches (its averaged weights when it has "
                         "them; default none, or as saved)")
    ap.add_argument("--kd-weight", type=float, default=None,
                    help="with --teacher: the loss is (1 - w) CE(sample) + w CE(teacher's distribution) "
                         "(default 0.5 with a teacher, or as saved; validation stays the plain CE)")
    ap.add_argument("--ltp-taps", type=int, default=None,
                    help="lagged-excitation (pitch) inputs of GRU-A (0: LPCNet; odd, e.g. 5; default as saved, "
                         "else 0); --init-from a model without them widens it by zero input columns")
    ap.add_argument("--ltp-gate", type=float, default=None,
                    help="voicing gate of the LTP taps: in frames whose pitch correlation (feature 19) is below "
                         "this, every tap reads mu-law zero (in [0, 1); 0: no gate; needs --ltp-taps; default as "
                         "saved, else 0)")
    ap.add_argument("--quantized-after-epoch", type=int, default=None,
                    help="from this epoch on, train on quantized features (default: 3/4 of --epochs)")
    ap.add_argument("--adapt", default=None, choices=["frame", "all"],
                    help="what the quantized-feature adaptation trains (LPCNet, the default: the frame-rate net)")
    ap.add_argument("--val-features", default=None, choices=["qfeatures", "features"], help="default qfeatures")
    ap.add_argument("--noise-domain", default="exc", choices=["exc", "sig", "self", "none"],
                    help="noise injected into the teacher-forced past (noise.py): exc (default) synthetic "
                         "integer Laplacian noise on the mu-law excitation; sig the same on the mu-law signal; "
                         "self the model's OWN one-step error: each batch, one no-grad teacher-forced pass on "
                         "the clean inputs, one excitation drawn per sample with the runtime's sampling rule, "
                         "past = clean LPC prediction + that draw (self_noise.py; about one more forward pass "
                         "per step); none: the clean past")
    ap.add_argument("--noise-scale", type=float, default=None,
                    help="std scale of the synthetic noise (default 6 for exc, 1.5 for sig; unused by self)")
    ap.add_argument("--self-mix", type=float, default=1.0,
                    help="noise domain self: the fraction of sequences that take the model's draws, the rest "
                         "keep the clean past (in [0, 1]; default 1)")
    ap.add_argument("--sparse-density", type=float, default=None,
                    help="target block density of GRU-A's recurrent weights (16x1 blocks, diagonal kept; LPCNet: "
                         "0.1; in (0, 1]; default 1 = dense, or as saved)")
    ap.add_argument("--sparse-start", type=int, default=None,
                    help=f"step (of this run) where the density ramp starts (default "
                         f"{SCHEDULE_DEFAULTS['sparse_start']}, or as saved)")
    ap.add_argument("--sparse-end", type=int, default=None,
                    help=f"step where it reaches the target and the mask is fixed (default "
                         f"{SCHEDULE_DEFAULTS['sparse_end']}, or as saved)")
    ap.add_argument("--sparse-every", type=int, default=None,
                    help=f"mask update interval in steps during the ramp (LPCNet: 1000 at batch 128; default "
                         f"{SCHEDULE_DEFAULTS['sparse_every']}, or as saved)")
    ap.add_argument("--device", default="auto", help="cuda | cpu | auto")
    ap.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "none"])
    ap.add_argument("--impl", default=None, choices=IMPLS,
                    help="training path (model.IMPLS; default PNSC_LPCNET_IMPL, else fast): the same function and "
                         "parameters, evaluated differently (fold: GRU-A's input gates and weight gradient in float32)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--max-resident-mb", type=float, default=20_000)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--name", default=None, help="model name recorded in the checkpoint")
    return ap.parse_args(argv)


# ---------------------------------------------------------------- helpers
def _default(path_arg, rel):
    if path_arg == "none":
        return None
    if path_arg:
        return path_arg
    p = REPO / rel
    return str(p) if p.is_file() else None


def _hours_seen(state: dict) -> float:
    """Audio-hours the weights have seen: this run's plus its initialisation's (a fine-tune's baseline)."""
    return round((state["audio_seconds"] + state["init_audio_seconds"]) / 3600.0, 3)


def _architecture_setting(given, ckpt: dict | None, key: str, kind, mismatch: str):
    """A setting that shapes the model (LTP taps, their gate): as saved in the run's checkpoint (0 for a new
    run or one saved before the setting existed) unless given; given differently from the saved one, the run
    cannot resume (``mismatch`` formats the saved and the given value)."""
    saved = kind(ckpt["config"].get(key, 0)) if ckpt is not None else None
    if given is None:
        return saved or kind(0)
    if saved is not None and given != saved:
        raise SystemExit("train: " + mismatch.format(saved, given))
    return given


def _atomic_save(obj, path: Path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_text(text: str, path: Path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Dist:
    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device_arg == "auto":
            device_arg = "cuda" if torch.cuda.is_available() else "cpu"
        if device_arg.startswith("cuda"):
            if not torch.cuda.is_available():
                raise SystemExit("train: --device cuda but CUDA is not available")
            self.device = torch.device("cuda", local if self.world > 1 else torch.device(device_arg).index or 0)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if self.world > 1:
            import torch.distributed as dist

            if self.device.type == "cuda":  # device_id binds NCCL to this rank's GPU (barrier() warned without it)
                dist.init_process_group("nccl", device_id=self.device)
            else:
                dist.init_process_group("gloo")
            self.dist = dist
        else:
            self.dist = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.dist is not None:
            t = t.to(self.device if self.device.type == "cuda" else "cpu")
            self.dist.all_reduce(t)
        return t

    def any_flag(self, flag: bool) -> bool:
        if self.dist is None:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self.dist.all_reduce(t)
        return bool(t.item() > 0)

    def close(self):
        if self.dist is not None:
            # every rank reaches the teardown together: a rank that destroys its gloo group while rank 0 is
            # still writing checkpoints could abort at exit ("terminate called without an active exception",
            # seen once in CI)
            self.dist.barrier()
            self.dist.destroy_process_group()


def learning_rate(lr: float, decay: float, warmup_steps: int, step: int, rewarm_from: int = 0) -> float:
    """LPCNet's lr / (1 + decay * step), ramped up linearly over the ``warmup_steps`` steps from ``rewarm_from``.

    ``rewarm_from`` is 0 for a run's own start, or the step where a resumed run got fresh Adam moments: their
    first updates are about lr per weight whatever the gradient, which undoes a trained run as it would a
    fine-tune's start.
    """
    ramp = min(1.0, (step - rewarm_from + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return lr * max(ramp, 0.0) / (1.0 + decay * step)


def _noise_gen(device, seed, rank, step) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + rank * 7919 + step * 104_729) % (2**62))
    return g


# ---------------------------------------------------------------- validation
def speakers_per_group(speaker_ids, group_map: dict | None) -> dict[str, int]:
    """Validation speakers per group (str keys): the weights of eq. (3)."""
    out: dict[str, int] = {}
    for s in speaker_ids if group_map else ():
        g = group_map.get(s)
        if g is not None:
            out[str(g)] = out.get(str(g), 0) + 1
    return out


def eq3(groups: dict[str, float], weights: dict[str, int]) -> float | None:
    """Eq. (3) of the paper: per-group losses weighted by validation speakers per group."""
    w = {g: weights.get(g, 0) for g in groups}
    return sum(w[g] * groups[g] for g in groups) / sum(w.values()) if sum(w.values()) else None


def load_teacher(path: str, dev: torch.device, main: bool) -> LPCNet:
    """A distillation teacher: the checkpoint's shipped weights (averaged when it has them), frozen, in eval mode."""
    p = Path(path)
    if p.is_dir():
        p = run_checkpoint(p) or p / "best.pt"
    try:
        teacher, ck = load_checkpoint(p)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise SystemExit(f"train: --teacher {path}: not a usable checkpoint ({exc})") from None
    if teacher.cfg.ltp_taps:
        raise SystemExit(f"train: --teacher {path}: a teacher with LTP taps is not supported")
    teacher.requires_grad_(False)
    if main:
        log(f"train: distilling from {p} (size {(ck.get('args') or {}).get('size')}, step {ck.get('step')})")
    return teacher.to(dev)


@torch.no_grad()  # no autograd graph: validation passes would otherwise hold a training step's activations
def validate(model: LPCNet, val: ShardSet, feat_key: str, batch: int, D: Dist, amp_dtype, n_groups: int):
    model.eval()
    G = n_groups + 1  # last slot: no group known
    sums = torch.zeros(G + 1, dtype=torch.float64)  # per group, and total
    cnts = torch.zeros(G + 1, dtype=torch.float64)
    for b in val.iter_all(batch, D.rank, D.world):
        sig, pred, exc, target, *ltp = make_inputs(b["signal"], b["lpc"], noise=False, features=b[feat_key],
                                                   ltp_taps=model.cfg.ltp_taps, ltp_gate=model.cfg.ltp_gate)
        with torch.autocast(D.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(b[feat_key], sig, pred, exc, ltp=ltp[0] if ltp else None)
        loss = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none").mean(1).double().cpu()
        grp = b["group"].cpu() if "group" in b else torch.full((len(loss),), -1)
        grp = torch.where((grp >= 0) & (grp < n_groups), grp, torch.full_like(grp, n_groups))
        sums.index_add_(0, grp, loss)
        cnts.index_add_(0, grp, torch.ones_like(loss))
        sums[-1] += loss.sum()
        cnts[-1] += len(loss)
    sums, cnts = D.all_sum(sums).cpu(), D.all_sum(cnts).cpu()
    model.train()
    if cnts[-1] == 0:
        return None, {}
    groups = {str(g): float(sums[g] / cnts[g]) for g in range(n_groups) if cnts[g] > 0}
    return float(sums[-1] / cnts[-1]), groups


# ---------------------------------------------------------------- main
def main(argv=None) -> int:
    a = parse_args(argv)
    t_start = time.monotonic()
    budget_s = a.budget_min * 60.0
    if a.threads:
        torch.set_num_threads(a.threads)
    D = Dist(a.device)
    out = Path(a.out)
    if D.main:
        out.mkdir(parents=True, exist_ok=True)
    dev = D.device
    amp = a.amp if a.amp != "auto" else ("bf16" if dev.type == "cuda" else "none")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]
    if amp_dtype is not None and dev.type == "cpu" and amp == "fp16":
        raise SystemExit("train: fp16 autocast needs CUDA")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # --- resume state
    last, last_opt = out / "last.pt", out / "last-optim.pt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False) if last.is_file() else None
    if ckpt is not None:
        # the run's identity comes from the checkpoint; the budget / limits from this call
        saved = ckpt["args"]
        # (file paths -- data, groups, splits -- come from this call: the repo may live elsewhere now)
        defaults = parse_args(["--data", "x", "--out", "x"])
        # where a fine-tune started stays part of its identity (resumed calls do not repeat --init-from)
        a.init_from = a.init_from or saved.get("init_from")
        for k in ("size", "group", "seed", "noise_domain", "noise_scale", "self_mix", "C"):
            was = saved.get(k, getattr(defaults, k))  # (runs saved before a setting existed: its default)
            if getattr(a, k) != was and getattr(a, k) != getattr(defaults, k) and D.main:
                log(f"train: resuming {out} as saved: {k}={was!r} (ignoring {getattr(a, k)!r})")
            setattr(a, k, was)
        # schedule settings: saved ones, unless this call sets them explicitly (they parse as None when
        # not given, so an explicit value equal to the built-in default still overrides the saved one)
        # (the batch is a schedule setting too: a call may change it, e.g. when models share a GPU)
        for k in ("batch", "lr", "lr_decay", "warmup_steps", "ema_decay", "clip", "quantized_after_epoch", "adapt",
                  "val_features", "sparse_density", "sparse_start", "sparse_end", "sparse_every", "teacher",
                  "kd_weight"):
            if getattr(a, k) is None:
                setattr(a, k, saved.get(k))
            elif getattr(a, k) != saved.get(k) and D.main:
                log(f"train: {k} changed from {saved.get(k)!r} to {getattr(a, k)!r}")
    for k, v in SCHEDULE_DEFAULTS.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if not 0.0 <= a.ema_decay < 1.0:
        raise SystemExit(f"train: --ema-decay must be in [0, 1) (0: off), got {a.ema_decay}")
    if a.kd_weight is None:
        a.kd_weight = 0.5 if a.teacher else 0.0
    if not 0.0 <= a.kd_weight <= 1.0:
        raise SystemExit(f"train: --kd-weight must be in [0, 1], got {a.kd_weight}")
    if a.kd_weight > 0 and not a.teacher:
        raise SystemExit(f"train: --kd-weight {a.kd_weight} needs --teacher")
    if a.teacher and a.noise_domain == "self":
        raise SystemExit("train: --teacher does not combine with --noise-domain self")
    if not 0.0 <= a.self_mix <= 1.0:
        raise SystemExit(f"train: --self-mix must be in [0, 1], got {a.self_mix}")
    if a.self_mix != 1.0 and a.noise_domain != "self":
        raise SystemExit(f"train: --self-mix {a.self_mix} needs --noise-domain self (not {a.noise_domain})")
    try:
        check_settings(a.sparse_density, a.sparse_start, a.sparse_end, a.sparse_every)
    except ValueError as exc:
        raise SystemExit(f"train: {exc}") from None
    if not 0.0 < a.group_mix <= 1.0:
        raise SystemExit(f"train: --group-mix must be in (0, 1], got {a.group_mix}")
    size = a.size
    group = None if str(a.group) == "all" else int(a.group)
    personalized = group is not None
    clip = a.clip if a.clip is not None else DEFAULT_CLIP[(size, personalized)]
    q_epoch = a.quantized_after_epoch if a.quantized_after_epoch is not None else (3 * a.epochs) // 4
    a.clip, a.quantized_after_epoch = clip, q_epoch
    groups_path = _default(a.groups, "models/speaker_groups.json")
    splits_path = _default(a.splits, "models/speaker_splits.json")
    a.groups, a.splits = groups_path, splits_path
    group_map = load_group_map(groups_path, a.C) if groups_path else None
    n_groups = (max(group_map.values()) + 1) if group_map else 0

    # --- data
    try:
        train_spk = select_speakers(splits_path, "train" if splits_path else None, group_map, group)
        focus = None
        if group is not None and a.group_mix < 1.0:  # the group's speakers as the focus of every speaker's data
            focus = train_spk
            train_spk = select_speakers(splits_path, "train" if splits_path else None, group_map, None)
        if splits_path:
            val_spk, want_val = select_speakers(splits_path, "validation", group_map, group), True
        else:  # no splits: a separate --val-data folder holds the validation speakers
            val_spk, want_val = select_speakers(None, None, group_map, group), bool(a.val_data)
        train = ShardSet(a.data, train_spk, group_map=group_map, device=dev, max_resident_mb=a.max_resident_mb,
                         seed=a.seed, focus=focus, focus_fraction=a.group_mix)
        val = None
        if want_val:
            try:
                val = ShardSet(a.val_data or a.data, val_spk, group_map=group_map, device=dev,
                               max_resident_mb=a.max_resident_mb, seed=a.seed)
            except DataError as exc:
                if D.main:
                    log(f"train: no validation data ({exc})")
    except DataError as exc:
        raise SystemExit(f"train: {exc}")
    n_batches = train.epoch_batches(0, a.batch)
    if n_batches == 0:
        raise SystemExit(f"train: {train.n} training sequences < batch {a.batch}")
    val_speakers = len(val.speaker_ids) if val is not None else 0
    val_groups_spk = speakers_per_group(val.speaker_ids, group_map) if val is not None else {}

    # --- model / optimizer
    a.ltp_taps = _architecture_setting(a.ltp_taps, ckpt, "ltp_taps", int,
                                       f"{last} has {{}} LTP taps, not --ltp-taps {{}}")
    a.ltp_gate = _architecture_setting(a.ltp_gate, ckpt, "ltp_gate", float,
                                       f"{last} has LTP gate {{:g}}, not --ltp-gate {{:g}}")
    try:
        cfg = config_for(size, a.ltp_taps, a.ltp_gate)
    except ValueError as exc:
        raise SystemExit(f"train: {exc}") from None
    torch.manual_seed(a.seed)
    model = LPCNet(cfg, impl=a.impl)  # seeded init
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    elif a.init_from:
        init = torch.load(a.init_from, map_location="cpu", weights_only=False)
        model.load_state_dict(widen_for_ltp(deployed_weights(init), cfg))
        if D.main:
            log(f"train: initialised from {a.init_from} (step {init.get('step')})")
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999))
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "pending_val": False, "best_val": None,
             "epoch_loss_sum": 0.0, "epoch_loss_n": 0, "epoch_gnorm_sum": 0.0, "history": [],
             "train_seconds": 0.0, "audio_seconds": 0.0,
             # audio the initialising checkpoint had seen (fine-tuning), so "audio-hours seen" is the whole history
             "init_audio_seconds": 0.0,
             # GRU-A block sparsity: the current mask and the density it was computed for (sparsity.py)
             "sparse": None,
             # best.pt holds a final-mask sparse model (a run that resumes or starts pruning replaces a dense best)
             "best_final": False,
             # validations since the best one (--patience)
             "since_best": 0,
             # the validation epoch whose weights the run holds when it ended on its best ones (--patience);
             # restored with the rest, so a finished run resumed without best.pt (a lease brings back last.pt
             # only) still says so; None once training moves the weights again
             "weights_epoch": None}
    if ckpt is None and a.init_from:
        state["init_audio_seconds"] = float(init.get("audio_seconds") or 0.0) + float(init.get("init_audio_seconds") or 0.0)
    rewarm_from = 0  # the step where the Adam moments started fresh (see learning_rate)
    if ckpt is not None:
        state.update({k: ckpt[k] for k in state if k in ckpt})
        rewarm_from = state["step"]
        if ckpt["args"].get("batch") != a.batch:  # positions within the epoch are counted in batches
            state["batch_in_epoch"] = 0
        rewarm = f", lr ramped up again over {a.warmup_steps} steps" if a.warmup_steps > 0 else ""
        if last_opt.is_file():
            o = torch.load(last_opt, map_location="cpu", weights_only=False)
            if o.get("step") == ckpt["step"]:
                opt.load_state_dict(o["optimizer"])
                rewarm_from = 0
            elif D.main:
                log(f"train: optimizer checkpoint does not match the model's step; fresh optimizer state{rewarm}")
        elif D.main:
            log(f"train: no {last_opt.name}; resuming with fresh optimizer state{rewarm}")
    sparsifier = None
    if a.sparse_density < 1.0:
        sparsifier = BlockSparsifier(model.gru_a.weight_hh_l0, a.sparse_density, a.sparse_start, a.sparse_end,
                                     a.sparse_every, state["sparse"])
    else:
        state["sparse"] = None  # turned off: the weights train dense again
    ema = WeightAverage(model, a.ema_decay, (ckpt or {}).get("ema")) if a.ema_decay > 0 else None
    # an average of pruned weights is not sparse by itself: its copy of the matrix takes the same mask every step
    ema_sparse = ema.shadow["gru_a.weight_hh_l0"] if ema is not None and sparsifier is not None else None
    if ema is not None and ckpt is not None and ckpt.get("ema") is None and D.main:
        # the committed state keeps only the averaged weights (state save --averaged-only): both start from them
        log(f"train: {out.name}: no averaged weights in the checkpoint; averaging (decay {a.ema_decay:g}) "
            f"starts from the weights it resumes with")
    teacher = load_teacher(a.teacher, dev, D.main) if a.teacher and a.kd_weight > 0 else None
    broadcast = (lambda t: D.dist.broadcast(t, src=0)) if D.dist is not None else None
    ddp = model
    if D.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    sample_params = {id(p) for p in model.sample_net_parameters()}

    name = a.name or (ckpt or {}).get("name") or \
        (f"plpcnet-{size.lower()}-g{group}" if personalized else f"lpcnet-bl-{size.lower()}")
    data_summary = {"train": train.summary(), "validation": val.summary() if val else None,
                    "val_speakers_per_group": val_groups_spk, "group": group,
                    "data": [str(d) for d in a.data]}
    gru_b = gru_scan.requested()
    if gru_b == "scan":  # a kernel that is missing or disagrees with cuDNN here trains nothing: fall back
        try:
            check = gru_scan.self_check(str(dev), length=480 if dev.type == "cuda" else 40)
            bad = max(check.values()) > 1e-3
        except Exception as exc:  # no Triton, or a compile failure on this device
            check, bad = f"{type(exc).__name__}: {str(exc)[:200]}", True
        if bad:
            log(f"train: {gru_scan.ENV}=scan unusable on {dev} ({check}); GRU-B runs on cuDNN instead")
            os.environ[gru_scan.ENV] = gru_b = "cudnn"
    if D.main:
        log(f"train: {name} size {size} ({count_parameters(model)} params) group {a.group} on {dev} "
            f"x{D.world}, amp {amp}, path {getattr(model, 'impl', '?')}+gru_b:{gru_b}; train {train.summary()}; val {val.summary() if val else None}; "
            f"{n_batches} batches/epoch of {a.batch}; resume step {state['step']} epoch {state['epoch']}")
        if sparsifier is not None:
            log(f"train: GRU-A block sparsity {sparsifier.rows}x1: density 1 -> {a.sparse_density:g} over steps "
                f"{a.sparse_start}..{a.sparse_end}, mask every {a.sparse_every}; now {sparsifier.density():.4f}")
    logf = open(out / "log.jsonl", "a") if D.main else None

    def save(done: bool):
        if not D.main:
            return
        last_val = next((r["val_loss"] for r in reversed(state["history"]) if r.get("val_loss") is not None), None)
        if state.get("weights_epoch") is not None:  # ended on its best weights (--patience): their loss
            last_val = state["best_val"]
        meta = {"version": CKPT_VERSION, "name": name, "config": cfg.to_dict(), "args": vars(a),
                "params": count_parameters(model), "data_summary": data_summary, "val_loss": last_val, **state}
        _atomic_save({"optimizer": opt.state_dict(), "step": state["step"]}, last_opt)
        weights = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
        if ema is not None:
            weights["ema"] = ema.state_dict()
        _atomic_save({**weights, **meta}, last)
        _atomic_text(json.dumps(state["history"], indent=1), out / "history.json")
        _atomic_text(json.dumps({"done": done, "name": name, "step": state["step"], "epoch": state["epoch"],
                                 "best_val": state["best_val"], "epochs": a.epochs,
                                 "audio_hours": _hours_seen(state),
                                 "own_audio_hours": round(state["audio_seconds"] / 3600.0, 3),
                                 "weights_epoch": state.get("weights_epoch")},
                                indent=1),
                     out / "status.json")
        try:
            from .curves import plot_run

            if state["history"]:
                plot_run(state["history"], out / "curves.png", name)
        except Exception as exc:  # plotting must never lose a checkpoint
            log(f"train: plot failed: {exc}")

    def run_validation():
        t0 = time.monotonic()
        feat = a.val_features
        with ema.swapped_in(model) if ema is not None else nullcontext():  # the weights that would ship
            vloss, vgroups = validate(model, val, feat, a.val_batch or a.batch, D, amp_dtype, n_groups) \
                if val is not None else (None, {})
        rec = {"kind": "epoch", "epoch": state["epoch"], "step": state["step"],
               "train_loss": state["epoch_loss_sum"] / max(1, state["epoch_loss_n"]),
               "grad_norm": state["epoch_gnorm_sum"] / max(1, state["epoch_loss_n"]),
               "features": "qfeatures" if state["epoch"] >= q_epoch else "features",
               "val_loss": vloss, "val_groups": vgroups, "val_speakers": val_speakers,
               "val_features": feat, "train_seconds": round(state["train_seconds"], 1),
               "audio_hours": round(state["audio_seconds"] / 3600.0, 3),
               "audio_hours_total": _hours_seen(state),
               "val_seconds": round(time.monotonic() - t0, 2)}
        if sparsifier is not None:
            rec["gru_a_density"] = round(sparsifier.density(), 6)
        if dev.type == "cuda":  # what multi.py's memory estimate (GIB_PER_SEQUENCE) should be measured against
            rec["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
        if vgroups and eq3(vgroups, val_groups_spk) is not None:
            rec["val_eq3"] = eq3(vgroups, val_groups_spk)
        state["history"].append(rec)
        # while GRU-A is still being pruned, a lower loss belongs to a denser model than the one this run makes:
        # best.pt (what export and branches start from) only holds final-mask checkpoints
        settled = sparsifier is None or sparsifier.final
        if vloss is not None and settled:  # --patience counts only validations that could have been a best
            state["since_best"] += 1
        stale = sparsifier is not None and not state["best_final"]  # the best so far is a denser model's
        if vloss is not None and settled and (state["best_val"] is None or stale or vloss < state["best_val"]):
            state["best_final"] = sparsifier is not None
            state["since_best"] = 0
            state["best_val"] = vloss
            if D.main:
                meta = {"name": name, "config": cfg.to_dict(), "params": count_parameters(model),
                        "step": state["step"], "epoch": state["epoch"], "val_loss": vloss,
                        "audio_seconds": state["audio_seconds"], "init_audio_seconds": state["init_audio_seconds"],
                        "data_summary": data_summary, "args": vars(a)}
                best = ema.state_dict() if ema is not None else \
                    {k: v.detach().cpu() for k, v in model.state_dict().items()}
                _atomic_save({"model": best, **meta}, out / "best.pt")
        if D.main:
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log(f"train: {name} epoch {state['epoch']} step {state['step']} train {rec['train_loss']:.4f} "
                f"val {vloss if vloss is None else round(vloss, 4)} groups {vgroups}")
        state["epoch"] += 1
        state["batch_in_epoch"] = 0
        state["epoch_loss_sum"] = state["epoch_loss_n"] = state["epoch_gnorm_sum"] = 0.0
        state["pending_val"] = False
        return time.monotonic() - t0

    def out_of_patience() -> bool:
        return a.patience > 0 and state["since_best"] >= a.patience

    def finished():
        return (state["epoch"] >= a.epochs or (a.max_steps is not None and state["step"] >= a.max_steps)
                or out_of_patience())

    val_time = 0.0
    step_time = None
    stopped_for_budget = False
    if state["pending_val"] and not finished():
        val_time = run_validation()
        save(finished())
    seq_samples = None
    t_window, seqs_window = time.monotonic(), 0
    while not finished() and not stopped_for_budget:
        epoch = state["epoch"]
        quant = epoch >= q_epoch
        feat_key = "qfeatures" if quant else "features"
        t_step_end = time.monotonic()  # (not the previous epoch's validation)
        for b, batch in train.iter_epoch(epoch, a.batch, D.rank, D.world, start=state["batch_in_epoch"]):
            elapsed = time.monotonic() - t_start
            est = (step_time or 0.0) * 1.5 + a.reserve_s
            if D.any_flag(elapsed + est > budget_s) or (a.max_steps is not None and state["step"] >= a.max_steps):
                stopped_for_budget = elapsed + est > budget_s
                break
            t0 = time.monotonic()
            # the step that will be logged is timed phase by phase (the log's phase_ms)
            phases = StepPhases(dev, on=D.main and (state["step"] + 1) % a.log_every == 0)
            phases.start(t_step_end)
            phases.mark("batch")
            lr = learning_rate(a.lr, a.lr_decay, a.warmup_steps, state["step"], rewarm_from)
            for pg in opt.param_groups:
                pg["lr"] = lr
            gen = _noise_gen(dev, a.seed, D.rank, state["step"])
            if a.noise_domain == "self":  # the plain module: the no-grad pass must not touch DDP's hooks
                sig, pred, exc, target, *ltp = self_inputs(model, batch["signal"], batch["lpc"], batch[feat_key],
                                                           generator=gen, mix=a.self_mix, amp_dtype=amp_dtype)
            else:
                sig, pred, exc, target, *ltp = make_inputs(
                    batch["signal"], batch["lpc"], noise=a.noise_domain != "none",
                    domain=a.noise_domain if a.noise_domain != "none" else "exc", scale=a.noise_scale,
                    generator=gen, features=batch[feat_key], ltp_taps=cfg.ltp_taps, ltp_gate=cfg.ltp_gate)
            phases.mark("inputs")
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                head = teacher_head(teacher, batch[feat_key], sig, pred, exc) if teacher is not None else None
                loss = ddp(batch[feat_key], sig, pred, exc, target, ltp=ltp[0] if ltp else None,
                           teacher=head, alpha=a.kd_weight)
            phases.mark("forward")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            phases.mark("backward")
            if quant and a.adapt == "frame":
                for p in model.parameters():
                    if id(p) in sample_params:
                        p.grad = None
            gnorm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], clip)
            opt.step()
            phases.mark("optimizer")
            if ema is not None:
                ema.update()
                phases.mark("average")
            lval = float(loss.detach())  # syncs: step timing is real
            phases.mark("sync")
            if not math.isfinite(lval):
                raise SystemExit(f"train: non-finite loss at step {state['step']}")
            state["step"] += 1
            state["weights_epoch"] = None
            if sparsifier is not None:  # the plain module's weights, identical on every rank
                new = sparsifier.after_step(state["step"], broadcast)
                if ema_sparse is not None:
                    sparsifier.prune_like(ema_sparse)
                if new is not None:
                    state["sparse"] = sparsifier.state()
                    if D.main:
                        log(f"train: {name} step {state['step']} GRU-A mask at density {new:.4f} "
                            f"(achieved {sparsifier.density():.4f})")
            state["batch_in_epoch"] = b + 1
            state["epoch_loss_sum"] += lval
            state["epoch_loss_n"] += 1
            state["epoch_gnorm_sum"] += float(gnorm)
            dt = time.monotonic() - t0
            state["train_seconds"] += dt
            step_time = dt if step_time is None else 0.9 * step_time + 0.1 * dt
            seq_samples = batch["signal"].shape[1] - 160
            seqs_window += batch["signal"].shape[0] * D.world
            state["audio_seconds"] += batch["signal"].shape[0] * D.world * seq_samples / 16000.0
            if D.main and state["step"] % a.log_every == 0:
                wall = time.monotonic() - t_window
                hours_per_min = seqs_window * seq_samples / 16000 / 3600 / (wall / 60)
                rec = {"kind": "step", "step": state["step"], "epoch": epoch, "loss": lval, "lr": lr,
                       "grad_norm": float(gnorm), "step_s": round(step_time, 4),
                       "audio_h_per_min": round(hours_per_min, 3), "phase_ms": phases.result()}
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                log(f"train: {name} step {state['step']} loss {lval:.4f} {hours_per_min:.2f} audio-h/min")
                t_window, seqs_window = time.monotonic(), 0
            t_step_end = time.monotonic()
        else:
            # epoch complete
            elapsed = time.monotonic() - t_start
            if D.any_flag(elapsed + max(val_time * 1.2, 1.0) + a.reserve_s > budget_s):
                state["pending_val"] = True
                stopped_for_budget = True
            else:
                val_time = run_validation()
            if not stopped_for_budget:
                save(finished())
            continue
        break
    done = finished() and not state["pending_val"]
    if done and out_of_patience() and (out / "best.pt").is_file():
        # the run ends on its best weights, so last.pt (what a lease brings back) is the one to export
        best_ck = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(best_ck["model"])
        if ema is not None:  # best.pt holds averaged weights: the run ends on them, as weights and as average
            ema.reset_to(best_ck["model"])
        # validation tables and exports read this record's losses, not the last validation's
        state["weights_epoch"] = best_ck["epoch"]
        if D.main:
            log(f"train: {name} no better validation loss in {state['since_best']} validations (--patience "
                f"{a.patience}): finished on its best weights (val {state['best_val']:.4f})")
    save(done)
    if D.main:
        log(f"train: {name} {'finished' if done else 'stopped'} at step {state['step']} epoch {state['epoch']} "
            f"after {time.monotonic() - t_start:.1f} s; checkpoint {last}")
        logf.close()
    D.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
