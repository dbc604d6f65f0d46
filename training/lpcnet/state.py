"""Durable training state, committed to git between rounds: compact and lossless where it matters.

    python -m pnsc.training.lpcnet.state save RUNS_ROOT training/state/runs --averaged-only   (committed)
    python -m pnsc.training.lpcnet.state save RUNS_ROOT .carry/state/runs-state.tar --without-logs  (a call)
    python -m pnsc.training.lpcnet.state load training/state/runs RUNS_ROOT
    python -m pnsc.training.lpcnet.state reopen RUNS_ROOT RUN [RUN...]   (patience ended it; train on)

``save`` writes one tar holding, per run, ``last.pt`` (weights stored as float16, everything else as
saved: step, epoch, position in the epoch, learning-rate settings, best validation loss, validation
history behind Fig. 5), the run's small logs, and for the long-trained generic baselines also
``last-optim.pt`` with Adam's moments stored as bfloat16 (their range needs bf16, not fp16).
``load`` restores float32 files of the names train.py resumes from, so a round continues where the
last one stopped. Size per round: about 2 bytes per weight of every model plus 4 bytes per baseline
weight (about 30 MB for the ten decoders), the order of the shipped fp16 decoders (20 MB).
Concluded experiments (recipe branches that lost their comparison) can be kept as logs only
(``--logs-only NAME,...``): their validation history stays, their weights leave the state.

The committed state is a folder of one tar per run whose bytes depend only on the run's files (each member
keeps its file's modification time, and ``load`` restores it), so a round adds to git history only the runs it
changed; until round 13 one tar held every run and each round added all of it (36 MiB, 2.2 times the shipped
decoders). With ``--averaged-only`` a run trained with ``--ema-decay`` keeps only its averaged weights, the ones
that ship; resumed, it trains and averages on from them.

A device call's tar can leave out the logs a run only appends to (``--without-logs``: ``log.jsonl`` and
``stdout.log``, which nothing on the device reads; 1.5 MiB for eight runs). In their place each run carries
``logs-from.json``, the logs' lengths here; it comes back with the run, and ``pack --unpack`` puts what the call
wrote right after that many bytes of the logs kept here (and drops the note).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
from pathlib import Path

import torch

from .ema import deployed_weights
from .pack import APPEND_ONLY, DURABLE_OPTIM, LOGS_FROM, safe_members

SMALL = ("history.json", "status.json", "log.jsonl", "stdout.log")  # curves.png is redrawn from history


def _cast(obj, dtype):
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _cast(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(v, dtype) for v in obj)
    return obj


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def compact_checkpoint(ck: dict, averaged_only: bool) -> dict:
    """A train.py checkpoint as the state stores it: float16 weights and, with ``averaged_only``, only the
    averaged weights of an ``--ema-decay`` run (``expand_checkpoint`` undoes the cast)."""
    ck = dict(ck)
    if ck.get("ema") and averaged_only:
        # the weights that ship (--ema-decay: the average) stand in for the trained ones too, and a resumed
        # run continues training and averaging from them
        ck["model"] = deployed_weights(ck)
        ck["averaged_only"] = True  # (kept by load, so saving the restored run again gives the same bytes)
        del ck["ema"]
    ck["model"] = _cast(ck["model"], torch.float16)
    if ck.get("ema"):
        ck["ema"] = _cast(ck["ema"], torch.float16)
    ck["state_format"] = {"weights": "float16"}
    return ck


def expand_checkpoint(ck: dict) -> dict:
    """A stored checkpoint back to the float32 one train.py resumes from."""
    ck = dict(ck)
    ck["model"] = _cast(ck["model"], torch.float32)
    if ck.get("ema"):
        ck["ema"] = _cast(ck["ema"], torch.float32)
    ck.pop("state_format", None)
    return ck


def _run_members(run: Path, weights: bool, optim: bool, averaged_only: bool,
                 logs: bool = True) -> tuple[list, dict]:
    """(tar members as (name, bytes, mtime), summary) of one run: its logs (without ``logs``, only those
    training reads: the append-only ones stay behind), with ``weights`` its float16
    last.pt, with ``optim`` its bfloat16 Adam moments. Each member keeps its file's modification time, so an
    unchanged run gives the same bytes every time it is saved (and a restored run the time it was trained)."""
    def member(name: str, data: bytes, src: Path):
        return f"{run.name}/{name}", data, int(src.stat().st_mtime)

    out = []
    if weights:
        ck = compact_checkpoint(torch.load(run / "last.pt", map_location="cpu", weights_only=False), averaged_only)
        out.append(member("last.pt", _pt_bytes(ck), run / "last.pt"))
    for n in SMALL:
        if (run / n).is_file() and (logs or n not in APPEND_ONLY):
            out.append(member(n, (run / n).read_bytes(), run / n))
    if not logs:  # where the logs that come back begin: unpack joins them to these exactly
        sizes = {n: (run / n).stat().st_size for n in APPEND_ONLY if (run / n).is_file()}
        stamp = max((p for p in (run / "status.json", run / "last.pt") if p.is_file()), default=None,
                    key=lambda p: p.stat().st_mtime)
        out.append((f"{run.name}/{LOGS_FROM}", json.dumps(sizes, sort_keys=True).encode(),
                    int(stamp.stat().st_mtime) if stamp else 0))
    opt = run / "last-optim.pt"
    has_opt = weights and optim and opt.is_file()
    if has_opt:
        o = torch.load(opt, map_location="cpu", weights_only=False)
        o["optimizer"]["state"] = _cast(o["optimizer"]["state"], torch.bfloat16)
        o["state_format"] = {"moments": "bfloat16"}
        out.append(member("last-optim.pt", _pt_bytes(o), opt))
    summary = {"step": ck.get("step"), "optimizer": has_opt} if weights else {"step": None, "weights": False}
    return out, summary


def save_state(runs: Path, out: Path, optim_runs: tuple[str, ...] = DURABLE_OPTIM,
               logs_only: tuple[str, ...] = (), averaged_only: bool = False, without_logs: bool = False) -> dict:
    """Write the state of every run in ``runs``: into one tar (``out`` ending in ``.tar``: what a device call
    carries), or into a folder of one tar per run (the committed state: an unchanged run keeps the same bytes,
    so git stores only the runs a round changed). Runs named in ``logs_only`` keep their logs and history but
    no weights; ``averaged_only`` keeps only the averaged weights of runs that have them; ``without_logs`` leaves
    the append-only logs out (a device call's tar; not for the committed state, which must keep them)."""
    if without_logs and Path(out).suffix != ".tar":
        raise ValueError("--without-logs is for a device call's tar: the committed state keeps every log")
    runs, out = Path(runs), Path(out)
    found = sorted(p for p in runs.iterdir() if (p / "last.pt").is_file() or (p / "history.json").is_file())
    unknown = set(logs_only) - {p.name for p in found}
    if unknown:
        raise ValueError(f"--logs-only names no run in {runs}: {', '.join(sorted(unknown))}")
    one_tar = out.suffix == ".tar"
    (out.parent if one_tar else out).mkdir(parents=True, exist_ok=True)
    summary, members = {}, {}
    for run in found:
        weights = run.name not in logs_only and (run / "last.pt").is_file()  # a concluded branch stays one
        members[run.name], summary[run.name] = _run_members(run, weights, run.name in optim_runs, averaged_only,
                                                            logs=not without_logs)
    targets = {out: [m for ms in members.values() for m in ms]} if one_tar else \
        {out / f"{name}.tar": ms for name, ms in members.items()}
    for dst, ms in targets.items():
        tmp = dst.with_name(dst.name + ".part")
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data, mtime in ms:
                _add(tar, name, data, mtime)
        tmp.replace(dst)
    if not one_tar:
        stale = sorted(p.name for p in out.glob("*.tar") if p.stem not in members)
        if stale:
            print(f"state: {out} also holds runs not in {runs} (kept): {', '.join(stale)}", file=sys.stderr)
    return summary


def load_state(path: Path, runs: Path) -> list[str]:
    """Restore float32, resumable run folders into ``runs`` from a state tar or a folder of them."""
    path, runs = Path(path), Path(runs)
    tars = sorted(path.glob("*.tar")) if path.is_dir() else [path]
    names = []
    for tar_path in tars:
        names += _load_tar(tar_path, runs)
    return names


def _load_tar(tar_path: Path, runs: Path) -> list[str]:
    names = []
    with tarfile.open(tar_path, "r:") as tar:
        for m in safe_members(tar):
            data = tar.extractfile(m).read()
            dst = runs / m.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if m.name.endswith("last.pt"):
                data = _pt_bytes(expand_checkpoint(torch.load(io.BytesIO(data), map_location="cpu",
                                                              weights_only=False)))
            elif m.name.endswith("last-optim.pt"):
                o = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
                o["optimizer"]["state"] = _cast(o["optimizer"]["state"], torch.float32)
                o.pop("state_format", None)
                data = _pt_bytes(o)
            dst.write_bytes(data)
            # the time the file was saved, not now: a device call packs only the runs it trained (files
            # changed since it started), and restored ones written a split second after that start were
            # packed too (round 14's first call brought back all 12 runs, 55 MiB, for 2 trained)
            os.utime(dst, (m.mtime, m.mtime))
            names.append(m.name)
    return names


def _check_reopenable(run: Path) -> None:
    """ValueError unless ``run`` has a checkpoint and its status says finished."""
    if not (run / "last.pt").is_file() or not (run / "status.json").is_file():
        raise ValueError(f"{run}: no last.pt and status.json to reopen")
    if not json.loads((run / "status.json").read_text()).get("done"):
        raise ValueError(f"{run}: not finished, nothing to reopen")


def reopen_run(run: Path) -> dict:
    """Let a run that ``--patience`` finished train on, from the best weights it ended on.

    Its patience count and ``done`` flag are cleared (in ``last.pt`` and ``status.json``); weights, step,
    schedule position, best loss and history stay, so its next validation must beat that best to count.
    Meant for new training data (round 17's freshly augmented copies), where the old stop no longer says
    the run has converged. Refuses a run that is not finished or has no checkpoint."""
    run = Path(run)
    _check_reopenable(run)
    last, status = run / "last.pt", run / "status.json"
    st = json.loads(status.read_text())
    ck = torch.load(last, map_location="cpu", weights_only=False)
    before = int(ck.get("since_best", 0))
    ck["since_best"] = 0
    st["done"] = False
    tmp = last.with_suffix(".pt.tmp")
    torch.save(ck, tmp)
    os.replace(tmp, last)
    # the new mtime marks the run as changed, so the next device call packs it back (state.py's note above)
    status.write_text(json.dumps(st, indent=1))
    return {"step": int(ck.get("step", 0)), "since_best_was": before, "best_val": ck.get("best_val")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("runs", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--logs-only", default="", help="comma-separated runs to keep as logs and history, without weights")
    s.add_argument("--optim-runs", default=",".join(DURABLE_OPTIM),
                   help="comma-separated runs whose Adam moments are kept (default: the generic baselines); "
                        "name a fine-tune in mid-course to carry it to a fresh machine without an optimizer restart")
    s.add_argument("--without-logs", action="store_true",
                   help="leave out log.jsonl and stdout.log (a device call's tar; unpack joins the returned logs)")
    s.add_argument("--averaged-only", action="store_true",
                   help="runs with averaged weights (--ema-decay) keep only those (the committed state)")
    l_ = sub.add_parser("load")
    l_.add_argument("tar", type=Path, help="a state tar or a folder of them")
    l_.add_argument("runs", type=Path)
    r = sub.add_parser("reopen", help="a run finished by --patience trains on (new data): clear done and patience")
    r.add_argument("runs", type=Path)
    r.add_argument("names", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "reopen":
        for n in a.names:  # every run checked before any changes
            try:
                _check_reopenable(a.runs / n)
            except ValueError as e:
                ap.error(str(e))
        for n in a.names:
            info = reopen_run(a.runs / n)
            print(f"reopened {n}: step {info['step']}, best val {info['best_val']}, "
                  f"patience count {info['since_best_was']} -> 0")
        return 0
    if a.cmd == "save":
        logs_only = tuple(n for n in a.logs_only.split(",") if n)
        try:
            summary = save_state(a.runs, a.out, optim_runs=tuple(n for n in a.optim_runs.split(",") if n),
                                 logs_only=logs_only, averaged_only=a.averaged_only,
                                 without_logs=a.without_logs)
        except ValueError as e:
            ap.error(str(e))
        files = [a.out] if a.out.suffix == ".tar" else sorted(a.out.glob("*.tar"))
        print(f"{a.out}: {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB in {len(files)} file(s), runs {summary}")
    else:
        names = load_state(a.tar, a.runs)
        print(f"restored {len(names)} files into {a.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
