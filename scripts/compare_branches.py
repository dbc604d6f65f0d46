#!/usr/bin/env python3
"""Judge training runs by what they decode: recipe branches against their control, or round against round.

Each run is exported on its own (as its base decoder name, into a temporary models folder) and decodes the
same clips from 1.6 kb/s features with the shipped C sample loop; the clips come from the validation
speakers and, with ``--train-shard``, from training speakers too (no test material). Prints means and
paired differences against the first run given, per clip set:

    python scripts/compare_branches.py runs/r5/lpcnet-bl-s.control runs/r5/lpcnet-bl-s.noise3 \
        runs/r5/lpcnet-bl-s.nonoise [--train-shard data/audio_shards/audio-train-0000[0-4].tar] [--limit 10]

A run folder's name is a model name of ``training.lpcnet.multi`` (``lpcnet-bl-s``, ``plpcnet-s-g2-ft``,
``lpcnet-bl-s.noise3``, ...); personalized runs decode only clips of their group's speakers (generic runs given
with them decode the same clips: personalized against baseline). Runs of the
same name (round against round: ``runs/r4/lpcnet-bl-s runs/r6/lpcnet-bl-s``) are labelled ``r4/lpcnet-bl-s``.

``--pitch-line voiced|all`` sets how the encoder fits each superframe's pitch line
(``shared.quantizer.PITCH_LINE_VOICED_ONLY``: True / False; default: the shipped setting) when the clips'
features are coded: once for all runs, or one value per run, so each run decodes features coded the way its
training examples were (``--pitch-line all voiced`` for a round-4 run against a round-6 one). The same run may
be given twice with different settings; its label then carries the setting (``r6/lpcnet-bl-s[all]``).
Features are coded only in this process (the export subprocesses do not code any).

``--from-json FILE --reference LABEL`` decodes nothing: it prints the tables of an earlier ``--json`` again,
paired against another of its runs (a new fine-tune against the shipped one, when both were judged against
their baseline):

    python scripts/compare_branches.py --from-json docs/figures/round12/plpcnet-l-g0.json \
        --reference r11/plpcnet-l-g0-ft [--markdown OUT.md]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_ovrl")
PITCH_LINES = {"voiced": True, "all": False}


@contextmanager
def pitch_line(mode: str | None) -> Iterator[None]:
    """Code features with the pitch line fitted to the voiced frames (``voiced``) or all frames (``all``);
    ``None`` keeps the current setting. The module flag is restored afterwards."""
    from pnsc.shared import quantizer

    before = quantizer.PITCH_LINE_VOICED_ONLY
    if mode is not None:
        quantizer.PITCH_LINE_VOICED_ONLY = PITCH_LINES[mode]
    try:
        yield
    finally:
        quantizer.PITCH_LINE_VOICED_ONLY = before


def pitch_modes(modes: list[str] | None, n_runs: int) -> list[str | None] | str:
    """``--pitch-line`` values -> one mode per run (None = shipped setting), or an error message."""
    if not modes:
        return [None] * n_runs
    if len(modes) == 1:
        return modes * n_runs
    if len(modes) != n_runs:
        return f"--pitch-line takes one value or one per run ({n_runs}), got {len(modes)}"
    return list(modes)


def run_labels(runs: list[Path], modes: list[str | None]) -> list[str] | str:
    """Unique labels: the run folder's name, prefixed with its parent folder where names repeat and
    suffixed with the pitch-line setting where a run repeats; an error message for an exact repeat."""
    names = [r.name for r in runs]
    labels = [f"{r.parent.name}/{r.name}" if names.count(r.name) > 1 else r.name for r in runs]
    keys = [(str(r.resolve()), m) for r, m in zip(runs, modes)]
    if len(set(keys)) != len(keys):
        return "a run is given twice with the same --pitch-line setting"
    out = []
    for i, lab in enumerate(labels):
        if labels.count(lab) > 1:
            lab += f"[{modes[i] or 'shipped'}]"
        out.append(lab)
    if len(set(out)) != len(out):
        return "runs from different folders of the same name: " + ", ".join(sorted(set(labels)))
    return out


def export_alone(run: Path, base: str, tmp: Path, tag: str) -> tuple[Path, str, int | None]:
    """Export one run as decoder ``base`` into its own models folder ``tmp/models-<tag>``
    -> (models dir, family, group)."""
    root, models = tmp / f"runs-{tag}", tmp / f"models-{tag}"
    root.mkdir()
    (root / base).symlink_to(run.resolve())
    shutil.copytree(REPO / "models", models, ignore=shutil.ignore_patterns("decoders"))
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "export_decoders.py"), str(root), "--models-dir",
                        str(models), "--training-note", f"comparison export of {run}"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"compare_branches: export of {run} failed: {p.stderr.strip()[-500:]}")
    entry = next(m for m in json.loads((models / "manifest.json").read_text())["models"] if m.get("kind") == "decoder")
    group = entry["group"] if isinstance(entry["group"], int) else None
    return models, entry["family"], group


def reprint(p: argparse.ArgumentParser, path: Path, ref: str | None, markdown: Path | None) -> int:
    """The clip sets of a saved ``--json``, paired against its run ``ref``."""
    from pnsc.evaluation.stats import paired_table

    try:
        results = json.loads(path.read_text())
        labels = list(results["runs"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        p.error(f"{path}: not a compare_branches --json ({e})")
    if ref not in labels:
        p.error(f"--reference must be one of the runs in {path}: {', '.join(labels)}")
    report: list[str] = []
    for set_name in ("validation", "training"):
        if set_name not in results:
            continue
        res = results[set_name]["scores"]
        res = {ref: res[ref], **{k: v for k, v in res.items() if k != ref}}  # the reference row first
        block = [f"{set_name} speakers, {len(results[set_name]['clips'])} clips; paired difference to {ref} "
                 f"(95 % CI, wins)", "", *paired_table(res, ref, METRICS), ""]
        print("\n" + "\n".join(block))
        report += block
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(f"From {path.name}, paired against {ref}\n\n" + "\n".join(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", type=Path, help="run folders; the first is the reference")
    p.add_argument("--val-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--train-shard", type=Path, nargs="+", default=None,
                   help="also clips of training speakers (LibriSpeech), from these shards in turn")
    p.add_argument("--groups", type=Path, default=REPO / "models" / "training_groups.json")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--pitch-line", nargs="+", choices=sorted(PITCH_LINES), default=None, metavar="voiced|all",
                   help="pitch-line fit when coding features: one value for all runs or one per run "
                        "(default: the shipped setting, shared.quantizer.PITCH_LINE_VOICED_ONLY)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None, help="also write the printed tables here")
    p.add_argument("--from-json", type=Path, default=None,
                   help="print the tables of an earlier --json again (no decoding), paired against --reference")
    p.add_argument("--reference", default=None, help="with --from-json: the run label to pair against")
    a = p.parse_args(argv)
    if a.from_json:
        return reprint(p, a.from_json, a.reference, a.markdown)
    if not a.runs:
        p.error("give run folders (the first is the reference), or --from-json FILE --reference LABEL")
    modes = pitch_modes(a.pitch_line, len(a.runs))
    if isinstance(modes, str):
        p.error(modes)
    labels = run_labels(a.runs, modes)
    if isinstance(labels, str):
        p.error(labels)

    from tqdm import tqdm

    from pnsc.evaluation.metrics import Scorer
    from pnsc.evaluation.stats import paired_table
    from pnsc.receiver.runtime.stream import StreamingDecoder
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features
    from pnsc.training.lpcnet.data import load_group_map
    from pnsc.training.lpcnet.multi import split_branch
    from pnsc.training.lpcnet.val_clips import validation_clips

    for r in a.runs:
        if not (r / "last.pt").is_file() and not (r / "best.pt").is_file():
            p.error(f"{r}: no checkpoint")
    gmap = load_group_map(a.groups)
    from pnsc.shared import quantizer

    scorer = Scorer(metrics=METRICS)
    shipped = quantizer.PITCH_LINE_VOICED_ONLY
    results: dict = {"runs": {lab: {"path": str(r), "pitch_line": m or ("voiced" if shipped else "all")}
                              for lab, r, m in zip(labels, a.runs, modes)}}
    report: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        decs = {}
        exported: dict[str, tuple[Path, str, int | None]] = {}
        for i, (r, lab, mode) in enumerate(zip(a.runs, labels, modes)):
            key = str(r.resolve())
            if key not in exported:
                exported[key] = export_alone(r, split_branch(r.name)[0], tmp, str(i))
            models, family, group = exported[key]
            decs[lab] = (StreamingDecoder(family, group, models_dir=models), group, mode)
        # generic baselines decode any clips, so they may join one group's personalized runs (on that group's clips)
        groups = {g for _, g, _ in decs.values() if g is not None}
        if len(groups) > 1:
            p.error("compare runs of one group (and generic baselines) at a time")
        g = next(iter(groups), None)
        spk = None if g is None else {s for s, sg in gmap.items() if sg == g}  # clips of the group's speakers
        sets = {"validation": validation_clips(a.val_shard, a.limit, a.max_seconds, speakers=spk)}
        if a.train_shard:
            sets["training"] = []
            for shard in a.train_shard:
                left = a.limit - len(sets["training"])
                if left > 0:
                    sets["training"] += validation_clips(shard, left, a.max_seconds, source="librispeech",
                                                         speakers=spk)
        for set_name, clips in sets.items():
            if not clips:
                continue
            res = {name: {m: [] for m in METRICS} for name in decs}
            for utt, spk, audio in tqdm(clips, desc=set_name):
                feats, coded = extract_features(audio), {}
                for name, (dec, _, mode) in decs.items():
                    if mode not in coded:
                        with pitch_line(mode):
                            coded[mode] = quantize_features(feats)[1]
                    dec.reset()
                    sc = scorer.score(audio, dec.decode(coded[mode]))
                    for m in METRICS:
                        res[name][m].append(float(sc[m]))
            results[set_name] = {"clips": [c[0] for c in clips], "scores": res}
            ref = labels[0]
            block = [f"{set_name} speakers, {len(clips)} clips; paired difference to {ref} (95 % CI, wins)", "",
                     *paired_table(res, ref, METRICS), ""]
            print("\n" + "\n".join(block))
            report += block
    if a.markdown:
        a.markdown.parent.mkdir(parents=True, exist_ok=True)
        settings = ", ".join(f"{lab}: {results['runs'][lab]['pitch_line']}" for lab in labels)
        a.markdown.write_text(f"Pitch-line fit per run: {settings}\n\n" + "\n".join(report))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
