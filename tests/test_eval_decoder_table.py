"""The report's decoder table: what each shipped decoder was trained on, read from the real models/manifest.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pnsc.evaluation.report import decoder_rows
from pnsc.evaluation.systems import decoder_training, latest_note

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("note, want", [
    ("round 29 (2026-11-28): shipped. Its float32 branch trained on (111.3 audio-h). round 27 (2026-11-28): kept.",
     "round 29 (2026-11-28): shipped."),
    ("round 29 (2026-11-28): kept; not trained this round. round 27 (x): kept.",
     "round 29 (2026-11-28): kept; not trained this round."),
    ("round 29 (2026-11-28): group 3 is served by LPCNet-BL-L (round 29, float32 branch, averaged weights).",
     "round 29 (2026-11-28): group 3 is served by LPCNet-BL-L (round 29, float32 branch, averaged weights)."),
    ("trained on one shard (no round label)", "trained on one shard (no round label)"),
    (None, ""),
])
def test_latest_note_is_the_newest_round_and_its_first_sentence(note: str | None, want: str) -> None:
    assert latest_note(note) == want


def test_every_shipped_decoder_is_listed_with_its_training() -> None:
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    entries = {m["name"]: m for m in manifest["models"] if m.get("kind") == "decoder"}
    rows = decoder_training(REPO / "models")
    assert [r["name"] for r in rows] == ["lpcnet-bl-s", "plpcnet-s-g0", "plpcnet-s-g1", "plpcnet-s-g2", "plpcnet-s-g3",
                                         "lpcnet-bl-l", "plpcnet-l-g0", "plpcnet-l-g1", "plpcnet-l-g2", "plpcnet-l-g3"]
    for r in rows:
        m = entries[r["name"]]
        assert r["audio_hours_seen"] == m["audio_hours_seen"] > 0
        assert r["sha256"] == m["sha256"]["sample"][:12]
        assert r["latest"].startswith("round ") and m["training_note"].startswith(r["latest"])
        if m.get("variant") == "baseline-fallback":
            # a slot served by its baseline is released with it and decodes with its files
            assert r["released"] == entries[m["serves_as"]]["released"]
            assert r["sha256"] == entries[m["serves_as"]]["sha256"]["sample"][:12]
        else:  # the round it was released in is one of the rounds its note tells
            assert r["released"] == m["released"] and f"{m['released']}: " in m["training_note"]


def test_rows_render_every_column_and_escape_text() -> None:
    rows = decoder_rows([
        {"name": "plpcnet-s-g3", "family": "plpcnet-s", "group": 3, "variant": "baseline-fallback",
         "serves_as": "lpcnet-bl-s", "released": "round 27 (x)", "audio_hours_seen": 1945.78,
         "gpu_minutes_own": 103.5, "step": None, "latest": "round 29 (x): served by <BL-S>.", "sha256": "665d2bd15e68"},
        {"name": "lpcnet-bl-l", "family": "lpcnet-bl-l", "group": "generic", "variant": "ft", "serves_as": None,
         "released": None, "audio_hours_seen": None, "gpu_minutes_own": 149.1, "step": 31409, "latest": "",
         "sha256": None},
    ])
    assert rows[0] == ["<code>plpcnet-s-g3</code>", "the lpcnet-bl-s decoder", "round 27 (x)", "1,946", "103.5", "–",
                       "round 29 (x): served by &lt;BL-S&gt;.", "<code>665d2bd15e68</code>"]
    assert rows[1][1:5] == ["generic", "–", "–", "149.1"] and rows[1][5] == "31,409" and rows[1][-1] == "<code>–</code>"
