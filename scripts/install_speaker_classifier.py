#!/usr/bin/env python3
"""Install a retrained speaker classifier (encoder + grouping) into models/, keeping decoders honest.

A candidate folder (e.g. training/state/encoder-vcc/, written by scripts/train_speaker_encoder.py
--models DIR, scripts/assign_groups.py --models DIR and scripts/make_training_groups.py) holds
  speaker_encoder.onnx, speaker_groups.json, training_groups.json.
Installing copies the three files into models/ and re-records them in models/manifest.json
(scripts/update_manifest.py).  The personalized decoders (plpcnet-*) are checked first: a decoder
whose manifest entry records ``training_groups_sha256`` of the candidate's training_groups.json was
trained for the new grouping and gets ``classifier_groups_sha256`` of the new speaker_groups.json.
Any other personalized decoder is *stale*: installing refuses (exit 2) unless --allow-stale, which
records the grouping the stale decoder belongs to (the previous speaker_groups.json's sha256), so
loading refuses it (receiver/reference_decoder.check_grouping) until it is retrained and re-exported.

Order: install with --allow-stale, train the decoders (scripts/gpu.sh reads models/training_groups.json),
then scripts/export_decoders.py, which records the hashes of the files in models/ at export time.
(Exporting decoders before installing would record the old map's hash even if they were trained
with the candidate's map.)

Usage: python scripts/install_speaker_classifier.py DIR [--models models] [--allow-stale] [--dry-run]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from pnsc.shared.checksum import sha256_file  # noqa: E402

FILES = ("speaker_encoder.onnx", "speaker_groups.json", "training_groups.json")


def personalized(man: dict) -> list[dict]:
    return [m for m in man.get("models", []) if m.get("kind") == "decoder"
            and str(m.get("family", "")).startswith("plpcnet")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidate", type=Path, help="folder with " + ", ".join(FILES))
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--allow-stale", action="store_true",
                    help="install although personalized decoders were trained for another group map "
                         "(they are then refused at load until retrained)")
    ap.add_argument("--dry-run", action="store_true", help="only report what would change")
    args = ap.parse_args(argv)

    missing = [str(args.candidate / f) for f in FILES if not (args.candidate / f).is_file()]
    if missing:
        print(f"pnsc: error: candidate file(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    man_path = args.models / "manifest.json"
    if not man_path.is_file():
        print(f"pnsc: error: {man_path} not found", file=sys.stderr)
        return 2
    man = json.loads(man_path.read_text())
    new_cls = sha256_file(args.candidate / "speaker_groups.json")
    new_map = sha256_file(args.candidate / "training_groups.json")
    old_cls_path = args.models / "speaker_groups.json"
    old_cls = sha256_file(old_cls_path) if old_cls_path.is_file() else None
    stale = [m["name"] for m in personalized(man) if m.get("training_groups_sha256") != new_map]
    fresh = [m["name"] for m in personalized(man) if m["name"] not in stale]
    print(f"new speaker_groups.json {new_cls[:12]}..., training_groups.json {new_map[:12]}...; "
          f"personalized decoders for this map: {fresh or 'none'}; stale: {stale or 'none'}")
    if stale and not args.allow_stale:
        print(f"pnsc: error: {len(stale)} personalized decoder(s) were trained for another group map "
              f"({', '.join(stale)}); train them with {args.candidate / 'training_groups.json'} and export "
              f"first, or pass --allow-stale (they will be refused at load)", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0

    for f in FILES:
        shutil.copyfile(args.candidate / f, args.models / f)
    import update_manifest

    update_manifest.main(args.models)
    man = json.loads(man_path.read_text())
    for m in personalized(man):
        if m["name"] in stale:
            if m.get("classifier_groups_sha256") in (None, new_cls):
                m["classifier_groups_sha256"] = old_cls or "unknown"
            m["grouping_note"] = (f"stale: trained with training_groups.json {str(m.get('training_groups_sha256'))[:12]}..., "
                                  f"not the installed map {new_map[:12]}... (scripts/install_speaker_classifier.py); "
                                  f"loading refuses it until it is retrained and re-exported")
        else:
            m["classifier_groups_sha256"] = new_cls
            m.pop("grouping_note", None)
    man_path.write_text(json.dumps(man, indent=1) + "\n")
    print(f"installed {', '.join(FILES)} from {args.candidate} into {args.models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
