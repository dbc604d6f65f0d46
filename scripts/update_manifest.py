#!/usr/bin/env python3
"""Record the non-decoder models (codebooks, speaker encoder, group maps, splits) in
models/manifest.json with their hashes and how they were made; decoder entries are kept as written
by scripts/export_decoders.py.

Usage: python scripts/update_manifest.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pnsc.shared.checksum import sha256_file  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"



def encoder_speakers(groups: dict) -> str:
    """Which speakers the encoder was trained on, from speaker_groups.json."""
    spk = groups.get("speakers", {})
    n_train = sum(1 for v in spk.values() if v.get("split") == "train") or 231
    named = sorted(s for s, v in spk.items() if v.get("split") == "train" and not s.isdigit())
    if not named:
        return f"the {n_train} LibriSpeech training speakers"
    return (f"the {n_train} training speakers ({n_train - len(named)} LibriSpeech + real studio speakers "
            f"{', '.join(named)} of the local corpus)")


def main(models: Path = MODELS) -> int:
    man_path = models / "manifest.json"
    man = json.loads(man_path.read_text()) if man_path.is_file() else {"models": []}
    groups = json.loads((models / "speaker_groups.json").read_text())
    training = groups.get("training", {})
    entries = [
        {"name": "codebooks-v1", "kind": "codebooks", "file": "codebooks-v1.npz",
         "training": "k-means (scripts/train_codebooks.py, seed 0, 15 iterations) on the 251 LibriSpeech "
                     "train-clean-100 excerpts (52 min, 314,520 frames): 3 x 1024 x 17 MSVQ, 4096 x 18 "
                     "signed middle-frame codebook, 4 correlation levels, c0 range"},
        {"name": "speaker-encoder", "kind": "speaker_encoder", "file": "speaker_encoder.onnx",
         "params": training.get("params"),
         "training": "Siamese 2 x GRU(32) on log-magnitude STFT, BCE on dot-product logits (eq. 1), "
                     f"{training.get('steps', '?')} steps on {encoder_speakers(groups)} (CPU); "
                     "scripts/train_speaker_encoder.py"},
        {"name": "speaker-groups", "kind": "speaker_groups", "file": "speaker_groups.json",
         "training": f"k-means on per-speaker mean embeddings of {encoder_speakers(groups)}, C = 2..6 "
                     f"(default C = {groups.get('default_groups')}); validation speakers by nearest centroid"},
        {"name": "training-groups", "kind": "group_map", "file": "training_groups.json",
         "training": "speaker -> group (C = 4) used to train the personalized decoders: LibriSpeech by the "
                     "k-means assignment current at training time, other corpus speakers by nearest centroid "
                     "(scripts/assign_groups.py + scripts/make_training_groups.py)"},
        {"name": "speaker-splits", "kind": "splits", "file": "speaker_splits.json",
         "training": "seeded train / validation / test speaker splits (training/corpus/splits.py)"},
    ]
    old = {m.get("name"): m for m in man.get("models", [])}
    for e in entries:
        e["sha256"] = sha256_file(models / e["file"])
        prev = old.get(e["name"], {})
        if prev.get("note") and prev.get("sha256") == e["sha256"]:
            e["note"] = prev["note"]  # a hand-written note stays while the file is unchanged
    names = {e["name"] for e in entries}
    man["models"] = entries + [m for m in man.get("models", []) if m.get("name") not in names]
    man_path.write_text(json.dumps(man, indent=1) + "\n")
    print(f"{man_path}: {len(man['models'])} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
