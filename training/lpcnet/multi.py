"""Train several decoders at once (one process each, sharing the GPU(s)), all with the same budget.

    python -m pnsc.training.lpcnet.multi --data DIR --out-root ROOT --budget-min 9 \
        --models all10 [--batch 512] [--gpus 0] [-- extra train.py options]

Model names: ``lpcnet-bl-s``, ``lpcnet-bl-l``, ``plpcnet-{s,l}-g{G}-scratch`` (trained on group G's
speakers only, from random init) and ``plpcnet-{s,l}-g{G}-ft`` (initialised from
``ROOT/lpcnet-bl-{s,l}/best.pt``, falling back to last.pt).  Sets: ``all10`` (2 baselines + 8 scratch
PLPCNets for C=4), ``baselines``, ``scratch-s``, ``scratch-l``, ``ft-s``, ``ft-l``.
Recipe branches (ablations): ``<name>.<tag>[.<tag>...]`` starts from ``ROOT/<name>/best.pt`` (a trained
run, falling back to last.pt) as a fine-tune of the same speakers, with each tag's train.py options
appended after every other option, so they win: ``control`` (nothing changed: the restart alone),
``noiseN`` (``--noise-scale N``), ``nonoise`` (``--noise-domain none``), ``sig`` (``--noise-domain sig``),
``lrX`` (``--lr X``), ``decayX`` (``--lr-decay X``), ``bN`` (``--batch N``). Example:
``--models lpcnet-bl-s.control,lpcnet-bl-s.noise3,lpcnet-bl-s.nonoise,lpcnet-bl-s.b1024.lr2e-3``.
Each run writes to ROOT/<name>/ (see train.py) plus ROOT/<name>/stdout.log; runs whose status.json
says done are skipped.  Exit status: number of failed runs.
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

NAME_RE = re.compile(r"^(lpcnet-bl-(?P<bs>[sl])|plpcnet-(?P<ps>[sl])-g(?P<g>\d+)-(?P<v>scratch|ft))$")
_NUM = r"(\d+(\.\d+)?([eE]-?\d+)?)"
TAGS = [(re.compile(r"^control$"), lambda m: []),
        (re.compile(rf"^noise(?P<x>{_NUM})$"), lambda m: ["--noise-scale", m.group("x")]),
        (re.compile(r"^nonoise$"), lambda m: ["--noise-domain", "none"]),
        (re.compile(r"^sig$"), lambda m: ["--noise-domain", "sig"]),
        (re.compile(rf"^lr(?P<x>{_NUM})$"), lambda m: ["--lr", m.group("x")]),
        (re.compile(rf"^decay(?P<x>{_NUM})$"), lambda m: ["--lr-decay", m.group("x")]),
        (re.compile(r"^b(?P<x>\d+)$"), lambda m: ["--batch", m.group("x")])]


def split_branch(name: str) -> tuple[str, list[str]]:
    """``lpcnet-bl-s.noise3.lr1e-3`` -> (``lpcnet-bl-s``, its tags' train.py options)."""
    base, *tags = name.split(".")
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


def train_args(name: str, root: Path) -> tuple[list[str], list[str]]:
    """(train.py options, options that must come last) for a model name."""
    base, opts = split_branch(name)
    if base == name:
        return _base_args(name, root, start=True), []
    # a recipe branch: the base run's speakers, its weights as the start, the tags' options
    args = _base_args(base, root, start=False)
    args[args.index("--name") + 1] = name
    if not (root / name / "last.pt").is_file():
        args += _start_from(root / base, f"{name}: needs a trained {base}")
    return args, opts


def _start_from(run: Path, missing: str) -> list[str]:
    """``--init-from`` the run's best checkpoint (else its last); ``missing`` + the folder if it has none."""
    init = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
    if not init.is_file():
        raise FileNotFoundError(f"{missing} in {run}")
    return ["--init-from", str(init)]


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
    ap.add_argument("--C", type=int, default=4)
    ap.add_argument("--budget-min", type=float, default=9.0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--gpus", default=None, help="comma list of GPU ids, assigned round-robin")
    ap.add_argument("--stagger-s", type=float, default=2.0, help="delay between process starts")
    a = ap.parse_args(argv)
    root = Path(a.out_root)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    procs = []
    gpus = a.gpus.split(",") if a.gpus else None
    for i, name in enumerate(expand(a.models, a.C)):
        out = root / name
        st = out / "status.json"
        if st.is_file() and json.loads(st.read_text()).get("done"):
            print(f"multi: {name} already done", file=sys.stderr)
            continue
        try:
            targs, last = train_args(name, root)
        except FileNotFoundError as exc:
            print(f"multi: skip {exc}", file=sys.stderr)
            continue
        out.mkdir(parents=True, exist_ok=True)
        # every process ends inside the caller's budget
        budget = a.budget_min - (time.monotonic() - t0) / 60.0
        cmd = [sys.executable, "-m", "pnsc.training.lpcnet.train", *sum((["--data", d] for d in a.data), []),
               "--out", str(out), "--budget-min", f"{budget:.3f}", "--batch", str(a.batch), *targs, *extra, *last]
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        log = open(out / "stdout.log", "a")
        print(f"multi: start {name}: {' '.join(cmd[1:])}", file=sys.stderr)
        procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        time.sleep(a.stagger_s)
    failed = 0
    for name, p, log in procs:
        rc = p.wait()
        log.close()
        tail = (root / name / "stdout.log").read_text().splitlines()[-1:] if (root / name / "stdout.log").is_file() else []
        print(f"multi: {name} rc={rc} {tail[0] if tail else ''}", file=sys.stderr)
        failed += rc != 0
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
