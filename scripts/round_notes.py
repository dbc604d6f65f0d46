#!/usr/bin/env python3
"""Prepend a round's note to decoders' ``training_note`` in models/manifest.json.

    python scripts/round_notes.py NOTES.json [--manifest models/manifest.json] [--before OLD_MANIFEST]

NOTES.json: ``{"round": "round 23 (2026-11-27)", "notes": {"plpcnet-s-g2": "kept. ...", ...}}``, optionally with
``"initialised_from": {decoder: text}``: what an exported decoder was trained from, in words (the export records the
run's checkpoint path on the GPU machine, runs/gpu/.../last.pt, which says nothing here). Each named
decoder's note becomes ``"<round>: <text> <its note so far>"``, newest first as every round since 4 wrote them.
A decoder exported anew this round (scripts/export_decoders.py writes its entry without a note) takes its note
so far from ``--before``, the manifest as it was before the export, so a shipped decoder keeps its history.
A note that already starts with the round's label is left as it is (running twice changes nothing).
A decoder whose note begins "shipped" also records the round as its ``released`` (the release its files are from;
`pnsc eval`'s report shows it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _decoders(manifest: dict) -> dict[str, dict]:
    return {m["name"]: m for m in manifest.get("models", []) if m.get("kind") == "decoder"}


def apply_notes(manifest: dict, round_label: str, notes: dict[str, str], before: dict | None = None,
                initialised_from: dict[str, str] | None = None) -> list[str]:
    """Prepend ``round_label: text`` to each named decoder's note and set the given ``initialised_from`` texts (in
    place); the names whose note changed."""
    decoders, old = _decoders(manifest), _decoders(before or {})
    initialised_from = initialised_from or {}
    missing = sorted((set(notes) | set(initialised_from)) - set(decoders))
    if missing:
        raise SystemExit(f"round_notes: no decoder {', '.join(missing)} in the manifest")
    for name, text in initialised_from.items():
        decoders[name]["initialised_from"] = text.strip()
    changed = []
    for name, text in notes.items():
        entry = decoders[name]
        prev = entry.get("training_note") or (old.get(name, {}).get("training_note") or "")
        if prev.startswith(f"{round_label}: "):
            continue
        entry["training_note"] = f"{round_label}: {text.strip()} {prev}".rstrip()
        if text.strip().startswith("shipped"):
            entry["released"] = round_label
        changed.append(name)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notes", type=Path, help='{"round": "round N (date)", "notes": {decoder: text}}')
    p.add_argument("--manifest", type=Path, default=REPO / "models" / "manifest.json")
    p.add_argument("--before", type=Path, default=None, help="the manifest before this round's export")
    a = p.parse_args(argv)
    try:
        spec = json.loads(a.notes.read_text())
        label, notes = spec["round"], spec["notes"]
        inits = spec.get("initialised_from") or {}
        if not isinstance(inits, dict) or not all(isinstance(v, str) for v in inits.values()):
            raise TypeError("'initialised_from' must map decoder names to texts")
    except (OSError, ValueError, KeyError, TypeError) as e:
        p.error(f"{a.notes}: not a notes file with 'round' and 'notes' ({e})")
    manifest = json.loads(a.manifest.read_text())
    before = json.loads(a.before.read_text()) if a.before else None
    changed = apply_notes(manifest, label, notes, before, inits)
    a.manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"round_notes: {label}: {len(changed)} note(s) added ({', '.join(changed) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
