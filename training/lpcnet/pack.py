"""Pack training runs into a few tar files under a size cap (to bring them back from a GPU lease),
and unpack them into a runs folder (to carry them into the next lease).

    python -m pnsc.training.lpcnet.pack RUNS_ROOT OUT_DIR [--max-mib 15.5] [--best] [--optim] [--max-files 8]
        [--changed-since EPOCH_SECONDS]
    python -m pnsc.training.lpcnet.pack --unpack OUT_DIR/runs-*.tar RUNS_ROOT

Per run it packs last.pt (weights + training state, no optimizer moments), history.json,
status.json, log.jsonl, curves.png, stdout.log; best.pt with --best; last-optim.pt with --optim
(resuming without it restarts Adam's moments, with a note).  Files are grouped into
``runs-N.tar`` (no compression: weights do not compress), each under --max-mib; a file that cannot
fit is an error, as is needing more than --max-files tars.  ``--changed-since T`` packs only runs whose
last.pt or status.json changed at or after T (the device call's start): the others came with the call's
state and are on the development machine already, and leaving them out leaves room for the trained runs'
Adam moments (round 6 lost them to the 60 MiB cap when every run was packed).

When the runs' weights and logs alone would exceed ``--max-total-mib`` (round 15's third call trained ten runs,
about 80 MiB of float32 checkpoints, and brought back nothing), every ``last.pt`` travels as the committed state
keeps it (``last.fp16.pt``: float16 weights, only the averaged ones of an ``--ema-decay`` run), a third to a
quarter of the size; ``--unpack`` turns it back into a float32 ``last.pt``. The machine keeps its full files, so
a next call on it resumes as before; resumed elsewhere, such a run continues as from the committed state.

Of the moments, those of the generic baselines (``DURABLE_OPTIM``, the only ones the committed training state
keeps) go first and travel as bfloat16 (``last-optim.bf16.pt``, half the size, the precision the committed
state stores them in); ``--unpack`` turns them back into a float32 ``last-optim.pt``.  Round 12 lost both
baselines' moments: twelve runs' weights left 10 MiB, and the fine-tunes' moments, which no later call
reads, took it first.

``log.jsonl`` and ``stdout.log`` only grow, and nothing on the device reads them, so a call's state may go
without them (``state save --without-logs``: 1.5 MiB that round 25's first call needed for data). ``--unpack``
therefore joins such a log to the one already in the run folder instead of replacing it. Such a state names, per
run, how long each log was when it was saved (``logs-from.json``, which goes there and comes back with the run):
the incoming log follows exactly that much of the one here, whatever its lines. A run that went with its logs
has no such note; its log is joined on the lines the two share (the end of the one here, the start of the
incoming one), once, then the incoming rest.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

APPEND_ONLY = ("log.jsonl", "stdout.log")  # logs a run only appends to: joined on unpack, not replaced
LOGS_FROM = "logs-from.json"  # {log: bytes here when the run left without its logs}; read by unpack, not kept
SMALL = ("history.json", "status.json", "log.jsonl", "curves.png", "stdout.log", LOGS_FROM)
DURABLE_OPTIM = ("lpcnet-bl-s", "lpcnet-bl-l")  # runs whose Adam moments the committed state keeps
BF16_OPTIM = "last-optim.bf16.pt"
FP16_LAST = "last.fp16.pt"  # a last.pt as the committed state stores it, when full ones would not fit


def changed_since(run: Path, since: float | None) -> bool:
    """Whether the run's checkpoint or status changed at or after ``since`` (always, with None)."""
    if since is None:
        return True
    times = [p.stat().st_mtime for p in (run / "last.pt", run / "status.json") if p.is_file()]
    return bool(times) and max(times) >= since


def collect(root: Path, best: bool, optim: bool, since: float | None = None) -> list[tuple[Path, str]]:
    out = []
    for run in sorted(p for p in root.iterdir() if p.is_dir() and changed_since(p, since)):
        names = ["last.pt", *SMALL] + (["best.pt"] if best else []) + (["last-optim.pt"] if optim else [])
        for n in names:
            p = run / n
            if p.is_file():
                out.append((p, f"{run.name}/{n}"))
    return out


# what is worth most when space runs out, first
PRIORITY = ("last.pt", FP16_LAST, *SMALL, BF16_OPTIM, "last-optim.pt", "best.pt")


def _cast_moments(src: Path, dst: Path, dtype: str) -> None:
    """``src`` (Adam's moments as train.py saves them) with its floating-point tensors as ``dtype``, to ``dst``."""
    import torch

    from .state import _cast
    o = torch.load(src, map_location="cpu", weights_only=False)
    o["optimizer"]["state"] = _cast(o["optimizer"]["state"], getattr(torch, dtype))
    torch.save(o, dst)


def _rewrite_checkpoint(src: Path, dst: Path, expand: bool) -> None:
    """A train.py ``last.pt`` as the committed state stores it (float16, averaged weights only) or, with
    ``expand``, such a ``last.fp16.pt`` back to the float32 ``last.pt`` train.py resumes from; to ``dst``, with
    ``src``'s modification time (what a later pack's ``since`` compares)."""
    import torch

    from .state import compact_checkpoint, expand_checkpoint
    ck = torch.load(src, map_location="cpu", weights_only=False)
    torch.save(expand_checkpoint(ck) if expand else compact_checkpoint(ck, averaged_only=True), dst)
    os.utime(dst, (src.stat().st_mtime, src.stat().st_mtime))


def _must_go(arc: str) -> bool:
    """Weights and logs: what every pack holds, whatever the cap."""
    return arc.endswith(("/last.pt", "/" + FP16_LAST)) or arc.split("/")[-1] in SMALL


def _key(arc: str, durable: tuple[str, ...]) -> tuple:
    run, name = arc.split("/")[0], arc.split("/")[-1]
    first = durable.index(run) if run in durable else len(durable)  # durable runs' files first, in that order
    return (PRIORITY.index(name), first, arc)


def pack(root: Path, out_dir: Path, max_mib: float = 15.5, best: bool = False, optim: bool = False,
         max_files: int = 8, max_total_mib: float = 60.0, since: float | None = None,
         durable: tuple[str, ...] = DURABLE_OPTIM) -> list[Path]:
    """Pack runs into tars under ``max_mib`` each and ``max_total_mib`` together (the device tool brings
    back at most 64 MiB per call). Weights and logs always go; Adam moments and best.pt only while
    they fit, in that order (the ``durable`` runs' moments first, as bfloat16), with a note for each one
    left out."""
    cap = int(max_mib * 2**20) - 64 * 1024  # tar headers and padding
    with tempfile.TemporaryDirectory() as staging:  # the bfloat16 moments, until they are in a tar
        items = []
        for p, arc in collect(root, best, optim, since):
            run = arc.split("/")[0]
            if arc.endswith("/last-optim.pt") and run in durable:
                staged = Path(staging) / f"{run}.{BF16_OPTIM}"
                _cast_moments(p, staged, "bfloat16")
                p, arc = staged, f"{run}/{BF16_OPTIM}"
            items.append((p, arc))
        must = sum(p.stat().st_size + 1024 for p, arc in items if _must_go(arc))
        if must > max_total_mib * 2**20:
            print(f"pack: the runs' weights and logs take {must / 2**20:.1f} MiB, over the {max_total_mib} MiB "
                  "total: each last.pt travels as float16 averaged weights (as the committed state keeps them)",
                  file=sys.stderr)
            for i, (p, arc) in enumerate(items):
                if arc.endswith("/last.pt"):
                    run = arc.split("/")[0]
                    staged = Path(staging) / f"{run}.{FP16_LAST}"
                    _rewrite_checkpoint(p, staged, expand=False)
                    items[i] = (staged, f"{run}/{FP16_LAST}")
        items.sort(key=lambda x: _key(x[1], durable))
        return _write(_within_total(items, max_total_mib), out_dir, cap, max_mib, max_files)


def _within_total(items: list[tuple[Path, str]], max_total_mib: float) -> list[tuple[Path, str]]:
    """The items, in priority order, that fit in ``max_total_mib`` (weights and logs must)."""
    budget, kept = int(max_total_mib * 2**20), []
    for p, arc in items:
        s = p.stat().st_size + 1024
        if budget - s < 0:
            if _must_go(arc):
                raise ValueError(f"the runs' weights and logs alone exceed {max_total_mib} MiB: pack fewer runs")
            print(f"pack: left out {arc} ({s / 2**20:.1f} MiB): over the {max_total_mib} MiB total", file=sys.stderr)
            continue
        budget -= s
        kept.append((p, arc))
    return kept


def _write(items: list[tuple[Path, str]], out_dir: Path, cap: int, max_mib: float, max_files: int) -> list[Path]:
    """The items in ``runs-N.tar`` files of at most ``cap`` bytes each (first-fit decreasing)."""
    bins: list[list[tuple[Path, str]]] = []
    sizes: list[int] = []
    for p, arc in sorted(items, key=lambda x: -x[0].stat().st_size):
        s = p.stat().st_size + 1024
        if s > cap:
            raise ValueError(f"{p} ({s} bytes) does not fit in {max_mib} MiB")
        for i in range(len(bins)):
            if sizes[i] + s <= cap:
                bins[i].append((p, arc))
                sizes[i] += s
                break
        else:
            bins.append([(p, arc)])
            sizes.append(s)
    if len(bins) > max_files:
        raise ValueError(f"{len(bins)} tar files needed, more than {max_files}: pack fewer runs or drop --best/--optim")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, b in enumerate(bins):
        path = out_dir / f"runs-{i}.tar"
        with tarfile.open(path, "w") as tf:
            for p, arc in sorted(b, key=lambda x: x[1]):
                tf.add(p, arcname=arc)
        paths.append(path)
    return paths


def safe_members(tf: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The regular files of a tar that stay inside the folder they are extracted to."""
    return [m for m in tf.getmembers() if m.isfile() and ".." not in Path(m.name).parts
            and not Path(m.name).is_absolute()]


def _step(status_json: bytes | str) -> int | None:
    try:
        step = json.loads(status_json).get("step")
    except (ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def join_logs(here: bytes, incoming: bytes) -> bytes:
    """One log from the copy here and an incoming one written on from an older copy or from nothing: the
    longest run of lines that ends ``here`` and starts ``incoming`` is kept once (an incoming log that holds
    all of ``here`` replaces it; one with none of it is appended; one that ``here`` starts with adds nothing)."""
    if here.startswith(incoming):
        return here
    a, b = here.splitlines(keepends=True), incoming.splitlines(keepends=True)
    if a and not a[-1].endswith(b"\n"):
        a[-1] += b"\n"
    for k in range(min(len(a), len(b)), 0, -1):
        if a[-k:] == b[:k]:
            return b"".join(a + b[k:])
    return b"".join(a + b)


def follow_log(here: bytes, incoming: bytes, begun: int | None) -> bytes:
    """The log here with an incoming one: where the incoming one began at byte ``begun`` of this one (its run
    left without its logs when this log was that long), exactly the first ``begun`` bytes and then all of it;
    otherwise (``begun`` None, or more than there is here) joined on the lines they share (``join_logs``)."""
    if begun is None or begun > len(here):
        return join_logs(here, incoming)
    head = here[:begun]
    if head and not head.endswith(b"\n"):
        head += b"\n"
    return head + incoming


def _logs_from(data: bytes) -> dict[str, int]:
    try:
        d = json.loads(data)
    except ValueError:
        return {}
    return {k: v for k, v in d.items() if k in APPEND_ONLY and isinstance(v, int) and v >= 0} \
        if isinstance(d, dict) else {}


def unpack(tars: list[Path], root: Path) -> int:
    """Extract the tars into ``root`` (bfloat16 moments become float32 ``last-optim.pt``); files extracted.

    A run whose ``status.json`` in ``root`` is at a later step than the one in the tars keeps its files: an
    older call's tars unpacked after a newer one's would otherwise roll the run back (round 13 did, by hand).
    """
    root.mkdir(parents=True, exist_ok=True)
    incoming: dict[str, int] = {}
    begun: dict[str, dict[str, int]] = {}  # run -> log -> bytes here when it left without its logs
    for t in tars:
        with tarfile.open(t) as tf:
            for m in safe_members(tf):
                parts = Path(m.name).parts
                if len(parts) == 2 and parts[1] == "status.json":
                    step = _step(tf.extractfile(m).read())
                    if step is not None:
                        incoming[parts[0]] = step
                elif len(parts) == 2 and parts[1] == LOGS_FROM:
                    begun[parts[0]] = _logs_from(tf.extractfile(m).read())
    stale = set()
    for run, step in incoming.items():
        have = root / run / "status.json"
        here = _step(have.read_text()) if have.is_file() else None
        if here is not None and here > step:
            stale.add(run)
            print(f"unpack: kept {root / run} at step {here} (the tars hold step {step})", file=sys.stderr)
    n = 0
    for t in tars:
        with tarfile.open(t) as tf:
            members = [m for m in safe_members(tf) if Path(m.name).parts[0] not in stale]
            logs = {m.name: (root / m.name).read_bytes() for m in members
                    if Path(m.name).name in APPEND_ONLY and (root / m.name).is_file()}
            tf.extractall(root, members=members, filter="data")
            for name, here in logs.items():
                run, log = Path(name).parts
                (root / name).write_bytes(follow_log(here, (root / name).read_bytes(), begun.get(run, {}).get(log)))
            n += len(members)
            for m in members:
                if Path(m.name).name == LOGS_FROM:
                    (root / m.name).unlink()  # a note for this join only: the logs here are whole again
                elif Path(m.name).name == BF16_OPTIM:  # back to the float32 file train.py resumes from
                    _cast_moments(root / m.name, (root / m.name).with_name("last-optim.pt"), "float32")
                    (root / m.name).unlink()
                elif Path(m.name).name == FP16_LAST:
                    _rewrite_checkpoint(root / m.name, (root / m.name).with_name("last.pt"), expand=True)
                    (root / m.name).unlink()
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--unpack", action="store_true")
    ap.add_argument("--max-mib", type=float, default=15.5)
    ap.add_argument("--max-files", type=int, default=8)
    ap.add_argument("--best", action="store_true")
    ap.add_argument("--optim", action="store_true")
    ap.add_argument("--max-total-mib", type=float, default=60.0, help="all tars together (device tool: 64 MiB)")
    ap.add_argument("--changed-since", type=float, default=None,
                    help="only runs whose last.pt/status.json changed at or after this time (epoch seconds)")
    a = ap.parse_args(argv)
    if a.unpack:
        *tars, root = a.paths
        print(f"unpacked {unpack([Path(t) for t in tars], Path(root))} files into {root}", file=sys.stderr)
        return 0
    if len(a.paths) != 2:
        ap.error("pack needs RUNS_ROOT OUT_DIR")
    paths = pack(Path(a.paths[0]), Path(a.paths[1]), a.max_mib, a.best, a.optim, a.max_files, a.max_total_mib,
                 a.changed_since)
    for p in paths:
        print(f"{p} {p.stat().st_size / 2**20:.2f} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
