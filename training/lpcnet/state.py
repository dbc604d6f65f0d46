"""Durable training state, committed to git between rounds: compact and lossless where it matters.

    python -m pnsc.training.lpcnet.state save RUNS_ROOT training/state/runs-state.tar
    python -m pnsc.training.lpcnet.state load training/state/runs-state.tar RUNS_ROOT

``save`` writes one tar holding, per run, ``last.pt`` (weights stored as float16, everything else as
saved: step, epoch, position in the epoch, learning-rate settings, best validation loss, validation
history behind Fig. 5), the run's small logs, and for the long-trained generic baselines also
``last-optim.pt`` with Adam's moments stored as bfloat16 (their range needs bf16, not fp16).
``load`` restores float32 files of the names train.py resumes from, so a round continues where the
last one stopped. Size per round: about 2 bytes per weight of every model plus 4 bytes per baseline
weight (about 30 MB for the ten decoders), the order of the shipped fp16 decoders (20 MB).
Concluded experiments (recipe branches that lost their comparison) can be kept as logs only
(``--logs-only NAME,...``): their validation history stays, their weights leave the state.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import time
from pathlib import Path

import torch

from .pack import DURABLE_OPTIM, safe_members

SMALL = ("history.json", "status.json", "log.jsonl", "stdout.log")  # curves.png is redrawn from history


def _cast(obj, dtype):
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _cast(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(v, dtype) for v in obj)
    return obj


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_state(runs: Path, out: Path, optim_runs: tuple[str, ...] = DURABLE_OPTIM,
               logs_only: tuple[str, ...] = ()) -> dict:
    """Write the state tar; runs named in ``logs_only`` keep their logs and history but no weights."""
    runs, out = Path(runs), Path(out)
    found = sorted(p for p in runs.iterdir() if (p / "last.pt").is_file() or (p / "history.json").is_file())
    unknown = set(logs_only) - {p.name for p in found}
    if unknown:
        raise ValueError(f"--logs-only names no run in {runs}: {', '.join(sorted(unknown))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    summary = {}
    with tarfile.open(tmp, "w") as tar:
        for run in found:
            if run.name in logs_only or not (run / "last.pt").is_file():  # a concluded branch stays one
                for n in SMALL:
                    if (run / n).is_file():
                        _add(tar, f"{run.name}/{n}", (run / n).read_bytes())
                summary[run.name] = {"step": None, "weights": False}
                continue
            ck = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
            ck["model"] = _cast(ck["model"], torch.float16)
            if ck.get("ema"):  # a run's averaged weights (--ema-decay) travel as its weights do
                ck["ema"] = _cast(ck["ema"], torch.float16)
            ck["state_format"] = {"weights": "float16"}
            _add(tar, f"{run.name}/last.pt", _pt_bytes(ck))
            for n in SMALL:
                if (run / n).is_file():
                    _add(tar, f"{run.name}/{n}", (run / n).read_bytes())
            opt = run / "last-optim.pt"
            has_opt = run.name in optim_runs and opt.is_file()
            if has_opt:
                o = torch.load(opt, map_location="cpu", weights_only=False)
                o["optimizer"]["state"] = _cast(o["optimizer"]["state"], torch.bfloat16)
                o["state_format"] = {"moments": "bfloat16"}
                _add(tar, f"{run.name}/last-optim.pt", _pt_bytes(o))
            summary[run.name] = {"step": ck.get("step"), "optimizer": has_opt}
    tmp.replace(out)
    return summary


def load_state(tar_path: Path, runs: Path) -> list[str]:
    runs = Path(runs)
    names = []
    with tarfile.open(tar_path, "r:") as tar:
        for m in safe_members(tar):
            data = tar.extractfile(m).read()
            dst = runs / m.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if m.name.endswith("last.pt"):
                ck = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
                ck["model"] = _cast(ck["model"], torch.float32)
                if ck.get("ema"):
                    ck["ema"] = _cast(ck["ema"], torch.float32)
                ck.pop("state_format", None)
                data = _pt_bytes(ck)
            elif m.name.endswith("last-optim.pt"):
                o = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
                o["optimizer"]["state"] = _cast(o["optimizer"]["state"], torch.float32)
                o.pop("state_format", None)
                data = _pt_bytes(o)
            dst.write_bytes(data)
            # the time the state was saved, not now: a device call packs only the runs it trained (files
            # changed since it started), and restored ones written a split second after that start were
            # packed too (round 14's first call brought back all 12 runs, 55 MiB, for 2 trained)
            os.utime(dst, (m.mtime, m.mtime))
            names.append(m.name)
    return names


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
    l_ = sub.add_parser("load")
    l_.add_argument("tar", type=Path)
    l_.add_argument("runs", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "save":
        logs_only = tuple(n for n in a.logs_only.split(",") if n)
        try:
            summary = save_state(a.runs, a.out, optim_runs=tuple(n for n in a.optim_runs.split(",") if n),
                                 logs_only=logs_only)
        except ValueError as e:
            ap.error(str(e))
        print(f"{a.out}: {a.out.stat().st_size / 2**20:.1f} MiB, runs {summary}")
    else:
        names = load_state(a.tar, a.runs)
        print(f"restored {len(names)} files into {a.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
