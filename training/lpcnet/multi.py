"""Train several decoders at once (one process each, spread over the GPUs), all with the same budget.

    python -m pnsc.training.lpcnet.multi --data DIR --out-root ROOT --budget-min 9 \
        --models all10 [--backlog MODELS] [--resume-only [--fresh NAMES]] [--batch 512] [--gpus 0] \
        [-- extra train.py options]

Model names: ``lpcnet-bl-s``, ``lpcnet-bl-l``, ``plpcnet-{s,l}-g{G}-scratch`` (trained on group G's
speakers only, from random init) and ``plpcnet-{s,l}-g{G}-ft`` (initialised from
``ROOT/lpcnet-bl-{s,l}/best.pt``, falling back to last.pt).  Sets: ``all10`` (2 baselines + 8 scratch
PLPCNets for C=4), ``baselines``, ``scratch-s``, ``scratch-l``, ``ft-s``, ``ft-l``.
Recipe branches (ablations): ``<name>.<tag>[.<tag>...]`` starts from ``ROOT/<name>/best.pt`` (a trained
run, falling back to last.pt) as a fine-tune of the same speakers, with each tag's train.py options
appended after every other option, so they win: ``control`` (nothing changed: the restart alone),
``noiseN`` (``--noise-scale N``), ``nonoise`` (``--noise-domain none``), ``sig`` (``--noise-domain sig``),
``selfnoise`` (``--noise-domain self``: the model's own one-step draws as the noisy past), ``selfmixX``
(``--noise-domain self --self-mix X``: only a fraction X of the sequences take them),
``lrX`` (``--lr X``), ``decayX`` (``--lr-decay X``), ``bN`` (``--batch N``), ``ltpN`` (``--ltp-taps N``:
N lagged-excitation inputs, the start widened by zero columns), ``ltpgateX`` (``--ltp-gate X``: the taps
read mu-law zero in frames with pitch correlation < X; with ``ltpN``), ``mixX`` (``--group-mix X``: a fine-tune's epochs are
its group's speech for a fraction X, a fresh draw of the other training speakers' for the rest), ``sparseD`` (``--sparse-density D``:
GRU-A's recurrent weights pruned to 16x1 blocks at density D, LPCNet's 0.1; train.py's ramp defaults, steps
200..4000 with a mask every 100, cover the first half of a ~8,000-step branch, i.e. about three GPU calls at
batch 512; other ramps: ``-- --sparse-end N`` etc.), ``kdX`` (``--kd-weight X`` with ``--teacher`` the L run of the
same slot on the machine, ``ROOT/plpcnet-l-gG-ft`` or, without one, ``ROOT/lpcnet-bl-l``: the S decoder also learns the
L decoder's sample distribution; S runs only; or, for either size, the run that ``--teacher NAME=RUN`` names: e.g. a
fine-tune held to its own baseline's distribution, ``--teacher plpcnet-l-g1-ft.mix0.5.fp32.kd0.3=lpcnet-bl-l.fp32``), ``fp32`` (``--amp none``: the whole pass in float32, TF32 matmuls, instead of
bf16 autocast; round 22's batch check found bf16 GRU-A gradients 50-85 % from float32 at batch 512; 1.9 times
the bf16 peak memory, measured in round 23), ``fold`` (``--impl fold``: GRU-A's input gates, weight gradients and the gradient it
carries back in float32, its recurrence recomputed in the backward pass; the bf16 matmuls stay). A new branch starts from its longest-named ancestor that has a
checkpoint (``plpcnet-s-g1-ft.mix0.5.kd0.5`` from ``ROOT/plpcnet-s-g1-ft.mix0.5`` if it is there, else from
``ROOT/plpcnet-s-g1-ft``), with every tag of its own name applied; ``--start NAME=RUN[,NAME=RUN...]`` starts a
new run from ``ROOT/RUN`` instead (round 25 fine-tuned L groups 0 and 2 afresh from ``lpcnet-bl-l.fp32`` by
carrying two copies of it under ``plpcnet-l-g{0,2}-ft``: 5 MiB of the call's 64). A tag's number may hold a decimal
point (a ``.`` followed by a digit does not start a tag). Example:
``--models lpcnet-bl-s.control,lpcnet-bl-s.noise3,lpcnet-bl-s.nonoise,lpcnet-bl-s.b1024.lr2e-3``,
``lpcnet-bl-s.ltp5.ltpgate0.5``, ``lpcnet-bl-l.sparse0.1``.
Each run writes to ROOT/<name>/ (see train.py) plus ROOT/<name>/stdout.log; runs whose status.json
says done are skipped.  Exit status: number of failed runs.

GPU memory: models that would not fit side by side (estimated from the batch and size, `GIB_PER_SEQUENCE`,
against the GPUs' memory from nvidia-smi or ``--gpu-mem-gib``) train in waves, one after the other, each
wave with an equal share of the remaining budget; round 5 lost two of four runs started together to
out-of-memory errors.  ``--max-concurrent`` caps a wave's size by hand.

Backlog: ``--backlog MODELS`` (the same syntax as ``--models``; a name may not be in both) refills GPU slots
that come free early (a fine-tune stopped by ``--ft-patience`` after a minute of a nine-minute call): when a
run ends and at least ``--backlog-min-left`` minutes (default 1) of its wave remain, the next backlog model
that fits in the memory left on that GPU (estimated as for the waves; any model on an idle GPU) starts on it,
with what is left of the wave as its budget, until the backlog is empty.  Backlog models are checked at the
start like the others (done, missing base, ``--resume-only``); those never started are listed at the end and
do not count as failed.  The throughput lines count each run on the GPU it ran on.

One model over several GPUs: ``--ddp N`` runs each model as N processes under ``torchrun`` (DDP, one per
GPU of ``--gpus``; ``--batch`` is then the global batch), the models one after another, each with an equal
share of the budget; the throughput lines count the run on all N GPUs.  Not with ``--backlog``.

From random weights only on purpose: with ``--resume-only`` a run that would start from random
initialisation (``lpcnet-bl-{s,l}`` or ``plpcnet-*-gG-scratch`` with no ``ROOT/<name>/last.pt``, e.g. its
state was not carried to a fresh machine) is refused, and counted as failed, unless ``--fresh NAMES``
(names or sets, as ``--models``) lists it; fine-tunes and recipe branches start from trained weights and are
never refused.  scripts/gpu.sh ``train`` always passes ``--resume-only`` (env FRESH gives ``--fresh``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ..affinity import use_all_cpus
from .checkpoints import run_checkpoint

NAME_RE = re.compile(r"^(lpcnet-bl-(?P<bs>[sl])|plpcnet-(?P<ps>[sl])-g(?P<g>\d+)-(?P<v>scratch|ft))$")
_NUM = r"(\d+(\.\d+)?([eE]-?\d+)?)"
TAGS = [(re.compile(r"^control$"), lambda m: []),
        (re.compile(rf"^noise(?P<x>{_NUM})$"), lambda m: ["--noise-scale", m.group("x")]),
        (re.compile(r"^nonoise$"), lambda m: ["--noise-domain", "none"]),
        (re.compile(r"^sig$"), lambda m: ["--noise-domain", "sig"]),
        (re.compile(r"^selfnoise$"), lambda m: ["--noise-domain", "self"]),
        (re.compile(rf"^selfmix(?P<x>{_NUM})$"), lambda m: ["--noise-domain", "self", "--self-mix", m.group("x")]),
        (re.compile(rf"^lr(?P<x>{_NUM})$"), lambda m: ["--lr", m.group("x")]),
        (re.compile(rf"^decay(?P<x>{_NUM})$"), lambda m: ["--lr-decay", m.group("x")]),
        (re.compile(r"^b(?P<x>\d+)$"), lambda m: ["--batch", m.group("x")]),
        (re.compile(r"^ltp(?P<x>\d+)$"), lambda m: ["--ltp-taps", m.group("x")]),
        (re.compile(rf"^ltpgate(?P<x>{_NUM})$"), lambda m: ["--ltp-gate", m.group("x")]),
        (re.compile(rf"^sparse(?P<x>{_NUM})$"), lambda m: ["--sparse-density", m.group("x")]),
        (re.compile(rf"^ema(?P<x>{_NUM})$"), lambda m: ["--ema-decay", m.group("x")]),
        (re.compile(rf"^mix(?P<x>{_NUM})$"), lambda m: ["--group-mix", m.group("x")]),
        (re.compile(rf"^kd(?P<x>{_NUM})$"), lambda m: ["--kd-weight", m.group("x")]),
        (re.compile(r"^fp32$"), lambda m: ["--amp", "none"]),
        (re.compile(r"^fold$"), lambda m: ["--impl", "fold"])]


# GPU memory one training process takes, in GiB per sequence of its batch (15-frame sequences, bf16 autocast),
# as the device counts it: torch's peak allocation (`gpu_peak_gib`: S 15.0-16.7, L 18.5-20.2 GiB at batch
# 512) plus what its caching allocator keeps reserved beyond that. Round 13's OOM report on an 80 GB H100 under
# MPS, batch 512: S processes held 20.5-22.5 GiB, L 24.7-26.1 GiB, and a fourth process (an L beside three S,
# or beside S, L, L) ran out. Round 11's figures (0.030 / 0.037, from the peaks alone) let that happen.
GIB_PER_SEQUENCE = {"S": 0.041, "L": 0.048}
GIB_PER_PROCESS = 1.5  # CUDA context and allocator slack
# a distillation teacher's no-grad pass (L, bf16): GRU-A's input and output and the allocator's share, per sequence
KD_GIB_PER_SEQUENCE = 0.008
# a float32 pass (tag fp32) keeps its activations in float32: round 23's gpu_peak_gib at batch 512, S 31.1 and
# L 38.1 GiB (bf16: 16.7 / 20.2), rounded up per sequence. Two float32 S runs share an 80 GiB GPU, an L and an S too.
FP32_GIB_PER_SEQUENCE = {"S": 0.062, "L": 0.076}
POLL_S = 1.0  # how often the running processes are checked for an end
TRAINER = "pnsc.training.lpcnet.train"  # the module each process runs (python -m)


def model_size(name: str) -> str:
    """``S`` or ``L`` for any model or branch name."""
    m = NAME_RE.match(split_branch(name)[0])
    return (m.group("bs") or m.group("ps")).upper()


def estimate_gib(name: str, batch: int) -> float:
    """GPU memory a training process of this model at this batch is expected to reach."""
    opts = split_branch(name)[1]
    fp32 = False
    for opt, val in zip(opts[::2], opts[1::2]):
        if opt == "--batch":
            batch = int(val)
        if opt == "--amp":
            fp32 = val == "none"
    per = (FP32_GIB_PER_SEQUENCE if fp32 else GIB_PER_SEQUENCE)[model_size(name)]
    per += KD_GIB_PER_SEQUENCE if "--kd-weight" in opts else 0.0
    return GIB_PER_PROCESS + per * batch


def plan_waves(needs: list[tuple[str, float]], capacity_gib: float | None,
               max_concurrent: int | None = None, n_gpus: int = 1) -> list[list[str]]:
    """Group models (in order) into waves that fit together; one that fits nowhere trains alone.

    ``capacity_gib`` is one GPU's memory; with ``n_gpus`` > 1 a wave fits when each model, in order, finds
    room on the least-loaded GPU (the rule ``place`` replays when the wave starts)."""
    waves: list[list[str]] = []
    loads: list[list[float]] = []
    for name, gib in needs:
        for k, wave in enumerate(waves):
            g = _least_loaded(loads[k])
            fits = capacity_gib is None or loads[k][g] + gib <= capacity_gib
            if fits and (max_concurrent is None or len(wave) < max_concurrent):
                wave.append(name)
                loads[k][g] += gib
                break
        else:
            waves.append([name])
            loads.append([gib] + [0.0] * (n_gpus - 1))
    return waves


def _least_loaded(loads: list[float]) -> int:
    return min(range(len(loads)), key=lambda j: loads[j])


def place(needs: list[tuple[str, float]], n_gpus: int) -> list[int]:
    """GPU index for each model of a wave, in order, each on the least-loaded GPU: the placement
    ``plan_waves`` checked the wave's memory against."""
    loads = [0.0] * n_gpus
    out = []
    for _, gib in needs:
        g = _least_loaded(loads)
        out.append(g)
        loads[g] += gib
    return out


def gpu_memory_gib(gpus: list[str] | None) -> float | None:
    """Memory of the smallest GPU in use (nvidia-smi), or None without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    mib = [float(x) for x in out]
    if gpus:
        mib = [mib[int(g)] for g in gpus if int(g) < len(mib)]
    return min(mib) / 1024 if mib else None


def split_branch(name: str) -> tuple[str, list[str]]:
    """``lpcnet-bl-s.noise3.lr1e-3`` -> (``lpcnet-bl-s``, its tags' train.py options); a dot before a digit
    is a decimal point (``lpcnet-bl-s.ltp5.ltpgate0.5``)."""
    base, *tags = re.split(r"\.(?!\d)", name)
    opts: list[str] = []
    for t in tags:
        for rx, fn in TAGS:
            m = rx.match(t)
            if m:
                opts += fn(m)
                break
        else:
            raise SystemExit(f"multi: unknown recipe tag {t!r} in {name!r} (see --help)")
    if tags and opts == [] and tags != ["control"]:
        raise SystemExit(f"multi: {name!r} changes nothing: name it {base}.control")
    return base, opts


def expand(spec: str, C: int) -> list[str]:
    out = []
    for item in spec.split(","):
        item = item.strip()
        if item == "all10":
            out += ["lpcnet-bl-s", "lpcnet-bl-l"] + [f"plpcnet-{s}-g{g}-scratch" for s in "sl" for g in range(C)]
        elif item == "baselines":
            out += ["lpcnet-bl-s", "lpcnet-bl-l"]
        elif item in ("scratch-s", "scratch-l", "ft-s", "ft-l"):
            v, s = item.split("-")
            out += [f"plpcnet-{s}-g{g}-{v}" for g in range(C)]
        elif item:
            out.append(item)
    for n in out:
        if not NAME_RE.match(split_branch(n)[0]):
            raise SystemExit(f"multi: bad model name {n!r}")
    return list(dict.fromkeys(out))


def train_args(name: str, root: Path, start: str | None = None,
               teacher: str | None = None) -> tuple[list[str], list[str]]:
    """(train.py options, options that must come last) for a model name; ``start``: the run in ``root`` a new
    run starts from, in place of its baseline or ancestor; ``teacher``: the run in ``root`` whose distribution a
    ``kdX`` branch learns, in place of its slot's L run."""
    base, opts = split_branch(name)
    if teacher is not None and "--kd-weight" not in opts:
        raise SystemExit(f"multi: {name}: --teacher is for a kd branch (a kdX tag), and {name} has none")
    new = not (root / name / "last.pt").is_file()
    if base == name:
        args = _base_args(name, root, start=start is None)
    else:  # a recipe branch: the base run's speakers, its weights as the start, the tags' options
        args = _base_args(base, root, start=False)
        args[args.index("--name") + 1] = name
        if new and start is None:
            args += _start_from(_ancestor(name, root), f"{name}: needs a trained {base}")
    if new and start is not None:
        args += _start_from(root / start, f"{name}: --start needs a trained {start}")
    if base == name:
        return args, []
    if "--kd-weight" in opts:
        opts = opts + ["--teacher", teacher_for(base, root) if teacher is None else _teacher_run(root / teacher)]
    return args, opts


def parse_pairs(spec: str, flag: str = "--start") -> dict[str, str]:
    """``NAME=RUN,...`` (``--start``, ``--teacher``) as {NAME: RUN}."""
    out = {}
    for item in filter(None, (i.strip() for i in spec.split(","))):
        name, sep, run = item.partition("=")
        if not sep or not name or not run or "/" in run or run in (".", ".."):
            raise ValueError(f"{flag}: {item!r} is not NAME=RUN (RUN: a run folder of --out-root)")
        if name in out:
            raise ValueError(f"{flag}: {name} given twice")
        out[name] = run
    return out


def _teacher_run(run: Path) -> str:
    """The checkpoint of the teacher run that ``--teacher`` names."""
    if (ck := run_checkpoint(run)) is None:
        raise SystemExit(f"multi: no teacher checkpoint in {run}")
    return str(ck)


def _ancestor(name: str, root: Path) -> Path:
    """The run a new branch starts from: its longest-named ancestor with a checkpoint in ``root``
    (``a.t1.t2`` -> ``a.t1``, else ``a``)."""
    parts = re.split(r"\.(?!\d)", name)
    for k in range(len(parts) - 1, 1, -1):
        run = root / ".".join(parts[:k])
        if run_checkpoint(run) is not None:
            return run
    return root / parts[0]


def teacher_for(base: str, root: Path) -> str:
    """The distillation teacher of an S run: the checkpoint of the L run of the same slot in ``root``
    (``plpcnet-l-gG-ft``, else ``lpcnet-bl-l``)."""
    m = NAME_RE.match(base)
    if (m.group("bs") or m.group("ps")) != "s":
        raise SystemExit(f"multi: {base}: a kd branch distils an L teacher into an S run, not into {base}")
    runs = ([root / f"plpcnet-l-g{m.group('g')}-ft"] if m.group("g") is not None else []) + [root / "lpcnet-bl-l"]
    for run in runs:
        if (ck := run_checkpoint(run)) is not None:
            return str(ck)
    raise SystemExit(f"multi: {base}: no teacher checkpoint in {', '.join(map(str, runs))}")


def _start_from(run: Path, missing: str) -> list[str]:
    """``--init-from`` the run's best checkpoint (else its last); ``missing`` + the folder if it has none."""
    init = run_checkpoint(run)
    if init is None:
        raise FileNotFoundError(f"{missing} in {run}")
    return ["--init-from", str(init)]


def starts_from_random(name: str) -> bool:
    """True for the runs whose first call starts from random weights: the baselines and the scratch
    PLPCNets (a fine-tune starts from its baseline, a recipe branch from its base run)."""
    m = NAME_RE.match(name)
    return m is not None and (m.group("bs") is not None or m.group("v") == "scratch")


def _base_args(name: str, root: Path, start: bool) -> list[str]:
    """Size, group and name of a plain run; with ``start`` a new fine-tune's ``--init-from`` its baseline."""
    m = NAME_RE.match(name)
    if m.group("bs"):
        return ["--size", m.group("bs").upper(), "--group", "all", "--name", name]
    size, g, v = m.group("ps").upper(), m.group("g"), m.group("v")
    args = ["--size", size, "--group", g, "--name", f"plpcnet-{size.lower()}-g{g}"]
    if start and v == "ft" and not (root / name / "last.pt").is_file():
        args += _start_from(root / f"lpcnet-bl-{size.lower()}", f"{name}: needs a baseline checkpoint")
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, action="append")
    ap.add_argument("--out-root", required=True)
    ap.add_argument("--models", default="all10")
    ap.add_argument("--backlog", default="",
                    help="models (as --models) that start, in order, on a GPU slot a run frees early")
    ap.add_argument("--backlog-min-left", type=float, default=1.0,
                    help="start a backlog model only with at least this many minutes of the wave left")
    ap.add_argument("--resume-only", action="store_true",
                    help="refuse (and count as failed) a baseline or scratch run without a last.pt in the "
                         "out-root, which would start from random weights, unless --fresh names it")
    ap.add_argument("--fresh", default="", help="with --resume-only: the runs that may start from random weights")
    ap.add_argument("--start", default="",
                    help="NAME=RUN[,NAME=RUN...]: a new run NAME starts from the run RUN of --out-root instead of "
                         "its baseline or ancestor (a fine-tune afresh from a newer baseline)")
    ap.add_argument("--teacher", default="",
                    help="NAME=RUN[,NAME=RUN...]: the kd branch NAME learns the distribution of the run RUN of "
                         "--out-root (either size) instead of its slot's L run")
    ap.add_argument("--ddp", type=int, default=1,
                    help="processes per model under torchrun (DDP over that many GPUs of --gpus; --batch is the "
                         "global batch); models then train one after another")
    ap.add_argument("--C", type=int, default=4)
    ap.add_argument("--budget-min", type=float, default=9.0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--gpus", default=None, help="comma list of GPU ids; each run goes to the least-loaded one (estimated memory)")
    ap.add_argument("--stagger-s", type=float, default=2.0, help="delay between process starts")
    ap.add_argument("--gpu-mem-gib", type=float, default=None,
                    help="memory of one GPU (default: nvidia-smi's, the smallest in use; none: no waves)")
    ap.add_argument("--max-concurrent", type=int, default=None, help="at most this many processes at once")
    ap.add_argument("--ft-patience", type=int, default=0,
                    help="train.py --patience for the plain fine-tunes (plpcnet-*-gG-ft): each stops, on its best "
                         "weights, after this many validations without a better one (a group with little speech "
                         "overfits; round 10's group 3 never beat its start); 0 = off")
    a = ap.parse_args(argv)
    models, backlog_names = expand(a.models, a.C), expand(a.backlog, a.C)
    both = [n for n in backlog_names if n in models]
    if both:
        ap.error(f"{', '.join(both)}: in both --models and --backlog")
    fresh = set(expand(a.fresh, a.C))
    try:
        starts, teachers = parse_pairs(a.start, "--start"), parse_pairs(a.teacher, "--teacher")
    except ValueError as exc:
        ap.error(str(exc))
    for flag, pairs in (("--start", starts), ("--teacher", teachers)):
        stray = sorted(set(pairs) - set(models) - set(backlog_names))
        if stray:
            ap.error(f"{flag} names {', '.join(stray)}, in neither --models nor --backlog")
    no_kd = sorted(n for n in teachers if "--kd-weight" not in split_branch(n)[1])
    if no_kd:
        ap.error(f"--teacher names {', '.join(no_kd)}, without a kd tag (a kdX branch learns a teacher)")
    if a.ddp < 1:
        ap.error(f"--ddp must be at least 1, got {a.ddp}")
    if a.ddp > 1 and backlog_names:
        ap.error("--ddp trains one model at a time on every GPU: no --backlog")
    if a.ddp > 1 and a.gpus and len(a.gpus.split(",")) < a.ddp:
        ap.error(f"--ddp {a.ddp} needs as many GPUs in --gpus, got {a.gpus}")
    root = Path(a.out_root)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    gpus = a.gpus.split(",") if a.gpus else None
    failed = 0
    print(f"multi: {use_all_cpus()} of {os.cpu_count()} CPUs usable", file=sys.stderr)

    def prepare(names: list[str]) -> list[tuple[str, list[str], list[str]]]:
        """(name, train.py options, options that go last) of each name that can start; messages for the rest."""
        nonlocal failed
        out = []
        for name in names:
            st = root / name / "status.json"
            if st.is_file() and json.loads(st.read_text()).get("done"):
                print(f"multi: {name} already done", file=sys.stderr)
                continue
            if (a.resume_only and starts_from_random(name) and name not in fresh and name not in starts
                    and not (root / name / "last.pt").is_file()):
                print(f"multi: refuse {name}: no checkpoint in {root / name} and not in --fresh "
                      f"(it would start from random weights)", file=sys.stderr)
                failed += 1
                continue
            try:
                targs, last = train_args(name, root, starts.get(name), teachers.get(name))
            except FileNotFoundError as exc:
                print(f"multi: skip {exc}", file=sys.stderr)
                continue
            if a.ft_patience and name.endswith("-ft"):  # a plain fine-tune, not a branch of one
                last = [*last, "--patience", str(a.ft_patience)]
            out.append((name, targs, last))
        return out

    todo, backlog = prepare(models), prepare(backlog_names)
    capacity = a.gpu_mem_gib if a.gpu_mem_gib is not None else gpu_memory_gib(gpus)
    need = {n: estimate_gib(n, a.batch) for n, *_ in todo + backlog}
    n_gpus = len(gpus) if gpus else 1
    if a.ddp > 1:  # one model at a time, on all of the GPUs
        waves = [[n] for n, *_ in todo]
    else:
        waves = plan_waves([(n, need[n]) for n, *_ in todo], capacity, a.max_concurrent, n_gpus)
    if len(waves) > 1 and a.ddp == 1:  # (under --ddp the models take turns by design, not for memory)
        mem = (f"about {capacity:.0f} GiB per GPU, {n_gpus} GPU(s)" if capacity
               else f"at most {a.max_concurrent} at once")
        print(f"multi: {len(waves)} waves ({mem}): "
              + " | ".join(",".join(w) for w in waves), file=sys.stderr)
    args_of = {n: (targs, last) for n, targs, last in todo + backlog}
    hours_before = {n: own_audio_hours(root / n) for n in args_of}
    gpu_of: dict[str, str] = {}
    started: list[str] = []
    t_train = time.monotonic()

    def minutes() -> float:
        return (time.monotonic() - t0) / 60.0

    def launch(name: str, g: int, wave_end: float, how: str = "") -> tuple[str, subprocess.Popen, object, int]:
        """Start one training process on GPU index ``g`` (of ``gpus``) with the rest of the wave as its budget."""
        targs, last = args_of[name]
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        budget = wave_end - minutes()
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(a.ddp)] if a.ddp > 1 else []
        cmd = [sys.executable, *launcher, "-m", TRAINER, *sum((["--data", d] for d in a.data), []),
               "--out", str(out), "--budget-min", f"{budget:.3f}", "--batch", str(a.batch), *targs, *extra, *last]
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpu_of[name] = ",".join(gpus[:a.ddp]) if a.ddp > 1 else gpus[g]
        elif a.ddp > 1:
            gpu_of[name] = ",".join(str(i) for i in range(a.ddp))
        log = open(out / "stdout.log", "a")
        where = f" on GPU {gpu_of[name]}" if name in gpu_of else ""
        print(f"multi: start {name}{where}{how}: {' '.join(cmd[1:])}", file=sys.stderr)
        started.append(name)
        return name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log, g

    for k, wave in enumerate(waves):
        # each wave gets an equal share of what is left; every process ends inside the caller's budget
        wave_end = a.budget_min - (a.budget_min - minutes()) * (1 - 1 / (len(waves) - k))
        running = []
        for name, g in zip(wave, place([(n, need[n]) for n in wave], n_gpus)):
            running.append(launch(name, g, wave_end))
            time.sleep(a.stagger_s)
        while running:  # poll: whichever process ends first frees its slot first
            for run in [r for r in running if r[1].poll() is not None]:
                running.remove(run)
                name, p, log, g = run
                log.close()
                path = root / name / "stdout.log"
                tail = path.read_text().splitlines()[-1:] if path.is_file() else []
                print(f"multi: {name} rc={p.returncode} {tail[0] if tail else ''}", file=sys.stderr)
                failed += p.returncode != 0
                left = wave_end - minutes()
                if backlog and left >= a.backlog_min_left:
                    load = sum(need[r[0]] for r in running if r[3] == g)
                    for j, (n, *_) in enumerate(backlog):
                        if capacity is None or load == 0 or load + need[n] <= capacity:
                            running.append(launch(n, g, wave_end, f" from the backlog ({left:.2f} min left)"))
                            del backlog[j]
                            break
            if running:
                time.sleep(POLL_S)
    if backlog:
        print(f"multi: backlog not started: {', '.join(n for n, *_ in backlog)} (no slot came free with "
              f"{a.backlog_min_left:g} min of its wave left, or not enough GPU memory)", file=sys.stderr)
    hours = {n: own_audio_hours(root / n) - hours_before[n] for n in started}
    for line in throughput_lines(hours, gpu_of, (time.monotonic() - t_train) / 60.0):
        print(f"multi: {line}", file=sys.stderr)
    return failed


def own_audio_hours(run: Path) -> float:
    """Audio-hours a run folder's own training has seen (status.json; 0 for a run not started yet)."""
    try:
        st = json.loads((run / "status.json").read_text())
        if "own_audio_hours" in st:
            return float(st["own_audio_hours"])
        # written before status.json carried it: the last validation's count (a few steps short at most)
        hist = json.loads((run / "history.json").read_text())
        return float(hist[-1]["audio_hours"]) if hist else 0.0
    except (OSError, ValueError, KeyError):
        return 0.0


def throughput_lines(hours: dict[str, float], gpu_of: dict[str, str], minutes: float) -> list[str]:
    """Audio-hours trained this call per GPU and in all, per minute of wall time (the issue's throughput
    figure, summed over the models sharing each GPU). A DDP run's GPU key lists all of its GPUs ("0,1,2,3")."""
    if minutes <= 0 or not hours:  # no time, or no run started
        return []
    by_gpu: dict[str, list[str]] = {}
    for n in hours:
        by_gpu.setdefault(gpu_of.get(n, "-"), []).append(n)
    out = []
    for g, names in sorted(by_gpu.items()):
        h = sum(hours[n] for n in names)
        k = len(g.split(","))
        per = f" = {h / minutes / k:.2f} per GPU-minute over {k} GPUs (DDP)" if k > 1 else ""
        out.append(f"throughput GPU {g}: {h:.1f} audio-h in {minutes:.2f} min = {h / minutes:.2f} audio-h/min{per} "
                   f"({len(names)} run(s): {', '.join(f'{n} {hours[n]:.1f}' for n in names)})")
    total = sum(hours.values())
    n_gpus = len({x for g in by_gpu for x in g.split(",")})
    out.append(f"throughput all: {total:.1f} audio-h in {minutes:.2f} min = {total / minutes:.2f} audio-h/min, "
               f"{total / minutes / n_gpus:.2f} per GPU-minute over {n_gpus} GPU(s)")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
