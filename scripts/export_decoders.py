#!/usr/bin/env python3
"""Export trained decoders to ONNX and record them in models/manifest.json.

    python scripts/export_decoders.py RUNS_ROOT [--models-dir models] [--fig5 models/fig5_val_loss.png]

RUNS_ROOT holds one folder per training run (as written by ``training.lpcnet.multi``):
``lpcnet-bl-s``, ``lpcnet-bl-l``, ``plpcnet-{s,l}-g{G}-scratch`` and/or ``plpcnet-{s,l}-g{G}-ft``.
For each personalized (size, group) the variant with the lower best validation loss is exported as
``plpcnet-{s,l}-g{G}``; both losses are recorded under ``alternatives``.  Each decoder becomes
``decoders/<name>.frame.onnx`` + ``decoders/<name>.onnx``; a decoder whose GRU-A recurrent weights are
block-sparse gets ``gru_a_density`` (fraction of non-zero 16x1 blocks, diagonal apart) and ``gru_a_block``
in its manifest entry and ONNX metadata; the manifest's decoder entries (kind
"decoder") are replaced (with ``--keep-others`` only those of the decoders exported now), other entries are kept.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from pnsc.training.lpcnet.checkpoints import run_checkpoint  # noqa: E402
from pnsc.training.lpcnet.export import export_model, load_checkpoint  # noqa: E402
from pnsc.training.lpcnet.sparsity import export_notes  # noqa: E402
from pnsc.shared.checksum import sha256_file  # noqa: E402
from pnsc.receiver.reference_decoder import grouping_hashes  # noqa: E402
from pnsc.training.lpcnet.fallback import refresh_fallbacks  # noqa: E402

RUN_RE = re.compile(r"^(lpcnet-bl-(?P<bs>[sl])|plpcnet-(?P<ps>[sl])-g(?P<g>\d+)(-(?P<v>scratch|ft))?)$")



def _audio_hours(meta: dict) -> float | None:
    """Audio-hours the weights have seen: the run's own plus, for a fine-tuned run, its initialisation's."""
    s = meta.get("audio_seconds")
    return round((s + (meta.get("init_audio_seconds") or 0.0)) / 3600.0, 2) if s else None


def run_info(run: Path) -> dict | None:
    ck = run_checkpoint(run)
    if ck is None:
        return None
    meta = torch.load(ck, map_location="cpu", weights_only=False)
    status = json.loads((run / "status.json").read_text()) if (run / "status.json").is_file() else {}
    step, epoch, hours = meta.get("step"), meta.get("epoch"), _audio_hours(meta)
    if meta.get("weights_epoch") is not None:  # ended on its best weights (--patience): that validation's place
        rec = next((r for r in meta.get("history", []) if r.get("kind") == "epoch"
                    and r.get("epoch") == meta["weights_epoch"]), None)
        if rec is not None:
            step, epoch = rec["step"], rec["epoch"]
            hours = round(rec["audio_hours_total"], 2) if rec.get("audio_hours_total") is not None else hours
    return {"run": run, "ckpt": ck, "val_loss": meta.get("val_loss", meta.get("best_val")),
            "step": step, "epoch": epoch, "done": status.get("done"),
            "init_from": (meta.get("args") or {}).get("init_from"), "data_summary": meta.get("data_summary"),
            "audio_hours": hours,
            "train_minutes": round(meta["train_seconds"] / 60.0, 1) if meta.get("train_seconds") else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs_root")
    ap.add_argument("--models-dir", default=str(Path(__file__).resolve().parent.parent / "models"))
    ap.add_argument("--fig5", default=None, help="also plot the paper's Fig. 5 here (PNG)")
    ap.add_argument("--fp32", action="store_true", help="store float32 weights (default: float16 weights)")
    ap.add_argument("--training-note", default=None,
                    help="how these decoders were trained, in words (recorded in every manifest entry)")
    ap.add_argument("--audio-hours", default=None,
                    help="JSON {run name: audio-hours seen} for runs whose checkpoints predate the counter")
    ap.add_argument("--keep-others", action="store_true",
                    help="replace only the decoders exported now and keep the manifest's other decoder entries "
                         "(a round that ships some families; default: every decoder entry is replaced)")
    a = ap.parse_args(argv)
    root, models = Path(a.runs_root), Path(a.models_dir)
    chosen: dict[str, dict] = {}
    alternatives: dict[str, dict] = {}
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        m = RUN_RE.match(run.name)
        if not m:
            continue
        info = run_info(run)
        if info is None:
            print(f"skip {run.name}: no checkpoint", file=sys.stderr)
            continue
        if m.group("bs"):
            name, family, group, size = run.name, run.name, "generic", m.group("bs").upper()
        else:
            size, group = m.group("ps").upper(), int(m.group("g"))
            family = f"plpcnet-{size.lower()}"
            name = f"{family}-g{group}"
        variant = m.group("v") or ("ft" if info["init_from"] else "scratch")
        info.update(name=name, family=family, group=group, size=size, variant=variant)
        alternatives.setdefault(name, {})[variant] = info["val_loss"]
        best = chosen.get(name)
        if best is None or (info["val_loss"] is not None and
                            (best["val_loss"] is None or info["val_loss"] < best["val_loss"])):
            chosen[name] = info
    if not chosen:
        print(f"no runs found under {root}", file=sys.stderr)
        return 1
    out_dir = models / "decoders"
    entries = []
    # Which grouping the personalized decoders follow: the shipped classifier's (speaker_groups.json),
    # extended to the non-LibriSpeech training speakers in training_groups.json. Loading refuses a
    # personalized decoder whose recorded classifier grouping differs from the shipped one.
    grouping = grouping_hashes(models)
    audio_hours = json.loads(Path(a.audio_hours).read_text()) if a.audio_hours else {}
    for name, info in sorted(chosen.items()):
        model, ck = load_checkpoint(info["ckpt"])
        # a block-sparse GRU-A (training.lpcnet.sparsity): its block density and block shape, in the ONNX
        # metadata and the manifest entry (nothing for a dense one)
        sparse = export_notes(model.gru_a.weight_hh_l0)
        files = export_model(model, out_dir, name, {"name": name, "step": info["step"], **sparse},
                             fp16_weights=not a.fp32)
        params = sum(p.numel() for p in model.parameters())
        entries.append({
            "name": name, "kind": "decoder", "family": info["family"], "size": info["size"],
            "group": info["group"], "params": params, "val_loss": info["val_loss"],
            "val_features": (ck.get("args") or {}).get("val_features", "qfeatures"),
            "variant": info["variant"], "alternatives": alternatives[name],
            "step": info["step"], "epoch": info["epoch"], "training_finished": info["done"],
            "initialised_from": info["init_from"], "training_note": a.training_note,
            "training_data": info["data_summary"], "config": ck.get("config"),
            "ltp_taps": model.cfg.ltp_taps,  # lagged-excitation inputs (the runtime reads them from the ONNX metadata)
            "ltp_gate": model.cfg.ltp_gate,  # their voicing gate (pitch correlation below it: taps read 128)
            **grouping, **sparse,
            "audio_hours_seen": info["audio_hours"] or audio_hours.get(info["run"].name),
            # wall-clock minutes of this run's own training steps on the GPU (shared with the models trained
            # beside it; a fine-tune's baseline minutes are in the baseline's entry)
            "gpu_minutes_own": info["train_minutes"],
            "files": {k: str(p.relative_to(models)) for k, p in files.items()},
            "sha256": {k: sha256_file(p) for k, p in files.items()},
        })
        print(f"{name}: {params} params, val {info['val_loss']}, variant {info['variant']} "
              f"(alternatives {alternatives[name]})")
    man_path = models / "manifest.json"
    man = json.loads(man_path.read_text()) if man_path.is_file() else {}
    if isinstance(man, list):
        man = {"models": man}
    exported = {e["name"] for e in entries}
    kept = [m for m in man.get("models", []) if m.get("kind") != "decoder"
            or (a.keep_others and m.get("name") not in exported)]
    for slot, base in refresh_fallbacks(kept, {e["name"]: e for e in entries}, grouping):
        print(f"{slot}: served by the new {base} (files and sha256 updated; its training note is unchanged: "
              f"scripts/fallback_decoders.py {slot} --reason ... rewrites it)")
    man["models"] = kept + entries
    man_path.write_text(json.dumps(man, indent=1) + "\n")
    print(f"wrote {man_path} ({len(entries)} decoders)")
    if a.fig5:
        from pnsc.training.lpcnet.curves import plot_fig5, read_history

        base = {n: read_history(chosen[n]["run"]) for n in ("lpcnet-bl-s", "lpcnet-bl-l") if n in chosen}
        pers = {}
        for fam in ("plpcnet-s", "plpcnet-l"):
            runs = [chosen[n]["run"] for n in sorted(chosen) if chosen[n]["family"] == fam]
            if runs:
                pers[fam] = [read_history(r) for r in runs]
        data = plot_fig5(a.fig5, base, pers)
        Path(a.fig5).with_suffix(".json").write_text(json.dumps(data, indent=1))
        print(f"wrote {a.fig5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
