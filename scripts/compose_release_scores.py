#!/usr/bin/env python3
"""The scores a release would have, per utterance, without decoding it again.

A round judges its candidates with one `pnsc eval` report per decoder seed of the candidate set. When only some
slots ship, the release is the old release with those slots' utterances taken from the candidate report:

    python scripts/compose_release_scores.py OLD/scores.json CAND/scores.json OUT.json \
        lpcnet-bl-l plpcnet-s:1,2

``SYSTEM`` takes all of the candidate's utterances of that system (a baseline, or a family that changes whole);
``SYSTEM:G,G`` only those the sender's classifier put in groups G (``none``: those it left without a group,
which a personalized family decodes with its baseline) (a personalized family whose other slots keep
their old decoders: each utterance is decoded by its group's slot). Both reports must hold the same utterances
with the same group decisions (same eval set and classifier). OUT is OLD with those per-utterance scores
replaced, for `compare_reports.py` (e.g. ``--old-system lpcnet-bl-s`` on OUT against itself: the release's
personalization gain). OUT keeps no summaries (``summary``, ``paired``: OLD's would no longer match) and
records its sources and slots under ``composed``; read ``per_utterance``.

The sources are recorded as the paths given, or as ``--old-label`` / ``--candidate-label`` (for files committed
from a machine-specific folder: "the round-20 candidates' report, seed 0"). OLD's ``config.models_dir`` named one
models folder, which a composed release is not: it becomes ``--models-label`` (default "composed: see composed").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _load(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"pnsc: error: {path}: not a pnsc eval scores.json with group decisions ({e})")
    if not (isinstance(d, dict) and isinstance(d.get("per_utterance"), dict)
            and isinstance((d.get("classification") or {}).get("utterance_group"), dict)):
        raise SystemExit(f"pnsc: error: {path}: not a pnsc eval scores.json with group decisions "
                         "(needs per_utterance and classification.utterance_group)")
    return d


def parse_spec(spec: str) -> tuple[str, set[int | None] | None]:
    """``plpcnet-s:1,2`` -> ("plpcnet-s", {1, 2}); ``lpcnet-bl-l`` -> ("lpcnet-bl-l", None); ``plpcnet-l:3,none``
    -> ("plpcnet-l", {3, None}): ``none`` names the utterances the classifier left without a group, which a
    personalized family decodes with its baseline (so they change with a shipping baseline)."""
    system, sep, groups = spec.partition(":")
    if not system or (sep and not groups):
        raise ValueError(f"bad slot spec {spec!r}: SYSTEM or SYSTEM:G,G")
    if not sep:
        return system, None
    try:
        return system, {None if g == "none" else int(g) for g in groups.split(",")}
    except ValueError:
        raise ValueError(f"bad slot spec {spec!r}: groups are integers or 'none'") from None


def compose(old: dict, cand: dict, specs: list[str]) -> tuple[dict, dict[str, int]]:
    """OLD with the specified systems' utterances taken from CAND; returns it and how many each spec took."""
    groups = cand["classification"]["utterance_group"]
    if old["classification"]["utterance_group"] != groups:
        raise ValueError("the two reports differ in their utterances or group decisions")
    out = json.loads(json.dumps(old))
    for stale in ("summary", "paired"):  # OLD's aggregates: the composed per-utterance scores no longer match them
        out.pop(stale, None)
    out["composed"] = {"slots": list(specs), **({"old_composed": old["composed"]} if "composed" in old else {})}
    taken: dict[str, int] = {}
    for spec in specs:
        system, keep = parse_spec(spec)
        for side, d in (("old", old), ("candidate", cand)):
            if system not in d["per_utterance"]:
                raise ValueError(f"{system}: not in the {side} report")
        taken[spec] = take_utterances(out["per_utterance"], cand["per_utterance"], groups, system, keep)
    return out, taken


def take_utterances(dst: dict, cand: dict, groups: dict, system: str, keep: set | None) -> int:
    """Copy ``system``'s per-utterance scores from ``cand`` into ``dst`` for the utterances whose group (the
    sender's classifier's decision, None for none) is in ``keep`` (None: every utterance); how many it took."""
    n = 0
    for utt, g in groups.items():
        if keep is None or g in keep:
            if utt not in cand[system]:
                raise ValueError(f"{system}: the candidate report has no scores for {utt}")
            dst[system][utt] = cand[system][utt]
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path)
    p.add_argument("candidate", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("slots", nargs="+", help="SYSTEM or SYSTEM:G,G (see above)")
    p.add_argument("--old-label", help="how to record OLD under composed (default: its path)")
    p.add_argument("--candidate-label", help="how to record CANDIDATE under composed (default: its path)")
    p.add_argument("--models-label", default="composed: see composed",
                   help="config.models_dir of the composed report (OLD's named one models folder)")
    a = p.parse_args(argv)
    try:
        out, taken = compose(_load(a.old), _load(a.candidate), a.slots)
    except ValueError as e:
        p.error(str(e))
    out["composed"].update(old=a.old_label or str(a.old), candidate=a.candidate_label or str(a.candidate))
    if isinstance(out.get("config"), dict) and "models_dir" in out["config"]:
        out["config"]["models_dir"] = a.models_label
    a.out.write_text(json.dumps(out))
    for spec, n in taken.items():
        print(f"{spec}: {n} utterance(s) from {a.candidate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
