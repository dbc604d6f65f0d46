#!/usr/bin/env python3
"""Judge training runs by what they decode: recipe branches against their control, or round against round.

Each run is exported on its own (as its base decoder name, into a temporary models folder) and decodes the
same clips from 1.6 kb/s features with the shipped C sample loop; the clips come from the validation
speakers and, with ``--train-shard``, from training speakers too (no test material). Prints means and
paired differences against the first run given, per clip set:

    python scripts/compare_branches.py runs/r5/lpcnet-bl-s.control runs/r5/lpcnet-bl-s.noise3 \
        runs/r5/lpcnet-bl-s.nonoise [--train-shard data/audio_shards/audio-train-00004.tar] [--limit 10]

A run folder's name is a model name of ``training.lpcnet.multi`` (``lpcnet-bl-s``, ``plpcnet-s-g2-ft``,
``lpcnet-bl-s.noise3``, ...); personalized runs decode only clips of their group's speakers.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_ovrl")


def export_alone(run: Path, base: str, tmp: Path) -> tuple[Path, str, int | None]:
    """Export one run as decoder ``base`` into its own models folder -> (models dir, family, group)."""
    root, models = tmp / f"runs-{run.name}", tmp / f"models-{run.name}"
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders; the first is the reference")
    p.add_argument("--val-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--train-shard", type=Path, default=None, help="also clips of training speakers (LibriSpeech)")
    p.add_argument("--groups", type=Path, default=REPO / "models" / "training_groups.json")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)

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
    sets = {"validation": validation_clips(a.val_shard, a.limit * 4, a.max_seconds)}
    if a.train_shard:
        sets["training"] = validation_clips(a.train_shard, a.limit * 4, a.max_seconds, source="librispeech")
    scorer = Scorer(metrics=METRICS)
    results: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        decs = {}
        for r in a.runs:
            models, family, group = export_alone(r, split_branch(r.name)[0], tmp)
            decs[r.name] = (StreamingDecoder(family, group, models_dir=models), group)
        for set_name, clips in sets.items():
            groups = {g for _, g in decs.values()}
            if groups != {None} and len(groups) != 1:
                p.error("compare runs of one group (or generic baselines) at a time")
            g = next(iter(groups))
            clips = [c for c in clips if g is None or gmap.get(c[1]) == g][:a.limit]
            if not clips:
                continue
            res = {name: {m: [] for m in METRICS} for name in decs}
            for utt, spk, audio in tqdm(clips, desc=set_name):
                _, qf = quantize_features(extract_features(audio))
                for name, (dec, _) in decs.items():
                    dec.reset()
                    sc = scorer.score(audio, dec.decode(qf))
                    for m in METRICS:
                        res[name][m].append(float(sc[m]))
            results[set_name] = {"clips": [c[0] for c in clips], "scores": res}
            ref = a.runs[0].name
            print(f"\n{set_name} speakers, {len(clips)} clips; paired difference to {ref} (95 % CI, wins)")
            print("\n".join(paired_table(res, ref, METRICS)))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
