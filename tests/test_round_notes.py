"""scripts/round_notes.py: a round's note goes first, a fresh export keeps its history, twice changes nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _manifest(notes: dict[str, str | None]) -> dict:
    return {"models": [{"name": "codebook", "kind": "codebook"}]
            + [{"name": n, "kind": "decoder", "training_note": t} for n, t in notes.items()]}


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "round_notes.py"), *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp)


def test_notes_are_prepended_and_fresh_exports_keep_their_history(tmp_path: Path) -> None:
    man, before, notes = tmp_path / "manifest.json", tmp_path / "before.json", tmp_path / "notes.json"
    man.write_text(json.dumps(_manifest({"lpcnet-bl-s": "round 22 (x): shipped.", "plpcnet-s-g2": None})))
    before.write_text(json.dumps(_manifest({"lpcnet-bl-s": "stale", "plpcnet-s-g2": "round 18 (y): shipped."})))
    notes.write_text(json.dumps({"round": "round 23 (z)", "notes": {"lpcnet-bl-s": "kept. ", "plpcnet-s-g2": "shipped."}}))
    r = _run(tmp_path, str(notes), "--manifest", str(man), "--before", str(before))
    assert r.returncode == 0, r.stderr
    got = {m["name"]: m.get("training_note") for m in json.loads(man.read_text())["models"]}
    assert got == {"codebook": None, "lpcnet-bl-s": "round 23 (z): kept. round 22 (x): shipped.",
                   "plpcnet-s-g2": "round 23 (z): shipped. round 18 (y): shipped."}
    released = {m["name"]: m.get("released") for m in json.loads(man.read_text())["models"]}
    assert released == {"codebook": None, "lpcnet-bl-s": None, "plpcnet-s-g2": "round 23 (z)"}  # only a ship sets it
    text = man.read_text()
    r = _run(tmp_path, str(notes), "--manifest", str(man), "--before", str(before))
    assert r.returncode == 0 and "0 note(s) added" in r.stdout and man.read_text() == text


def test_unknown_decoders_and_bad_files_are_refused(tmp_path: Path) -> None:
    man, notes = tmp_path / "manifest.json", tmp_path / "notes.json"
    man.write_text(json.dumps(_manifest({"lpcnet-bl-s": "a"})))
    notes.write_text(json.dumps({"round": "round 23 (z)", "notes": {"plpcnet-x-g9": "?"}}))
    r = _run(tmp_path, str(notes), "--manifest", str(man))
    assert r.returncode != 0 and "no decoder plpcnet-x-g9" in r.stderr
    notes.write_text("[1, 2]")
    r = _run(tmp_path, str(notes), "--manifest", str(man))
    assert r.returncode == 2 and "not a notes file" in r.stderr
    assert json.loads(man.read_text())["models"][1]["training_note"] == "a"


def test_initialised_from_replaces_the_exports_checkpoint_path(tmp_path: Path) -> None:
    man, notes = tmp_path / "manifest.json", tmp_path / "notes.json"
    m = _manifest({"lpcnet-bl-l": None, "plpcnet-l-g1": "round 29 (y): shipped."})
    m["models"][1]["initialised_from"] = "runs/gpu/lpcnet-bl-l/last.pt"
    m["models"][2]["initialised_from"] = "round-25 lpcnet-bl-l.fp32"
    man.write_text(json.dumps(m))
    notes.write_text(json.dumps({"round": "round 30 (z)", "notes": {"lpcnet-bl-l": "shipped."},
                                 "initialised_from": {"lpcnet-bl-l": "the float32 branch (rounds 23-30) "}}))
    r = _run(tmp_path, str(notes), "--manifest", str(man))
    assert r.returncode == 0, r.stderr
    got = {x["name"]: x.get("initialised_from") for x in json.loads(man.read_text())["models"]}
    assert got == {"codebook": None, "lpcnet-bl-l": "the float32 branch (rounds 23-30)",
                   "plpcnet-l-g1": "round-25 lpcnet-bl-l.fp32"}  # only the named decoder changes
    text = man.read_text()
    r = _run(tmp_path, str(notes), "--manifest", str(man))
    assert r.returncode == 0 and man.read_text() == text  # twice changes nothing


def test_bad_initialised_from_is_refused(tmp_path: Path) -> None:
    man, notes = tmp_path / "manifest.json", tmp_path / "notes.json"
    man.write_text(json.dumps(_manifest({"lpcnet-bl-s": "a"})))
    text = man.read_text()
    notes.write_text(json.dumps({"round": "r", "notes": {}, "initialised_from": {"plpcnet-x-g9": "?"}}))
    r = _run(tmp_path, str(notes), "--manifest", str(man))
    assert r.returncode != 0 and "no decoder plpcnet-x-g9" in r.stderr
    notes.write_text(json.dumps({"round": "r", "notes": {}, "initialised_from": ["lpcnet-bl-s"]}))
    r = _run(tmp_path, str(notes), "--manifest", str(man))
    assert r.returncode == 2 and "not a notes file" in r.stderr
    assert man.read_text() == text
