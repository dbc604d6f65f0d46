"""Manifest entries for a personalized decoder slot served by the generic baseline of its size.

When no fine-tune of a group decodes better than the baseline, the slot ``plpcnet-{s,l}-gG`` points at
``lpcnet-bl-{s,l}``'s files (``scripts/fallback_decoders.py``). Re-exporting that baseline
(``scripts/export_decoders.py``) changes the files' sha256, so the slot's entry follows the new baseline entry
(``refresh_fallbacks``): otherwise loading would refuse the slot as a file that differs from its manifest.
"""
from __future__ import annotations

# what the fallback entry takes over from its baseline's entry (files and sha256 as copies, in fallback_entry)
INHERITED = ("size", "params", "val_features", "config", "ltp_taps", "ltp_gate", "gru_a_density", "gru_a_block",
             "audio_hours_seen", "gpu_minutes_own")


def fallback_entry(baseline: dict, name: str, group: int, reason: str, grouping: dict) -> dict:
    """The manifest entry serving personalized slot ``name`` with ``baseline``'s files."""
    e = {"name": name, "kind": "decoder", "family": name.rsplit("-g", 1)[0], "group": group,
         "variant": "baseline-fallback", "serves_as": baseline["name"], "training_note": reason,
         **{k: baseline[k] for k in INHERITED if k in baseline}, **grouping}
    e["files"], e["sha256"] = dict(baseline["files"]), dict(baseline["sha256"])
    return e


def refresh_fallbacks(entries: list[dict], baselines: dict[str, dict],
                      grouping: dict) -> list[tuple[str, str]]:
    """Point every fallback entry of ``entries`` that a baseline in ``baselines`` (name -> new entry) serves at
    that baseline's new files, in place; returns the (slot, baseline) pairs refreshed. Their training notes are
    kept: they say why the slot falls back, which a new baseline does not change (a note naming the old
    baseline's round is updated by re-running scripts/fallback_decoders.py with a new --reason)."""
    refreshed = []
    for i, e in enumerate(entries):
        base = baselines.get(e.get("serves_as"))
        if e.get("variant") == "baseline-fallback" and base is not None:
            entries[i] = fallback_entry(base, e["name"], e["group"], e.get("training_note", ""), grouping)
            refreshed.append((e["name"], base["name"]))
    return refreshed
