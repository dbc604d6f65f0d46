#!/usr/bin/env python3
"""Decode held-out utterances with every trained decoder (batched, on a GPU when there is one).

Each utterance is encoded at 1.6 kb/s with the real codec; personalized decoders are chosen by
the sender's speaker classifier (the estimated group c*, as the paper's listening test), so
misclassifications count. Writes one ``decoded.npz`` (``ref/<utt>`` and ``<decoder>/<utt>``)
and ``groups.json`` for ``scripts/eval_quality.py``.

Usage:
  python scripts/gpu_eval_decoders.py --audio DIR --out OUT \
      --model lpcnet-bl-s=runs/bl-s/best.pt --model plpcnet-s@0=runs/p-s-g0/best.pt ...
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pnsc.shared.audio import load_audio  # noqa: E402
from pnsc.shared.features import extract_features  # noqa: E402
from pnsc.shared.quantizer import quantize_features  # noqa: E402
from pnsc.training.corpus.librispeech import by_speaker, scan_corpus  # noqa: E402
from pnsc.training.lpcnet.batch_synth import synthesize_batch  # noqa: E402
from pnsc.training.lpcnet.export import load_checkpoint  # noqa: E402


def parse_models(specs: list[str]) -> dict[str, dict[int | None, Path]]:
    """``name=path`` (generic) or ``name@group=path`` (one member of a personalized family)."""
    families: dict[str, dict[int | None, Path]] = {}
    for spec in specs:
        key, _, path = spec.partition("=")
        name, _, group = key.partition("@")
        families.setdefault(name, {})[int(group) if group else None] = Path(path)
    return families


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, required=True, help="LibriSpeech-layout folder of held-out speech")
    ap.add_argument("--per-speaker", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=8.0)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from pnsc.sender.speaker_classifier import SpeakerClassifier

    classifier = SpeakerClassifier()
    utts = []
    for spk, items in sorted(by_speaker(scan_corpus(args.audio)).items()):
        for u in items[: args.per_speaker]:
            full = load_audio(u.path, quiet=True)
            group = classifier.classify(full).group  # the sender's decision on the first seconds
            pcm = full[: int(args.max_seconds * 16000)]
            _, qfeat = quantize_features(extract_features(pcm))
            utts.append({"id": u.utt_id, "speaker": spk, "pcm": pcm, "qfeat": qfeat, "group": group})
    print(f"{len(utts)} utterances, {sum(len(u['pcm']) for u in utts) / 16000:.1f} s, device {device}", flush=True)

    out: dict[str, np.ndarray] = {f"ref/{u['id']}": u["pcm"] for u in utts}
    for name, members in parse_models(args.model).items():
        t0 = time.time()
        for group, path in members.items():
            chosen = [u for u in utts if group is None or u["group"] == group]
            if not chosen:
                continue
            model, _ = load_checkpoint(path)
            audio = synthesize_batch(model, [u["qfeat"] for u in chosen], seed=args.seed, device=device)
            for u, y in zip(chosen, audio):
                out[f"{name}/{u['id']}"] = y[: len(u["pcm"])]
        print(f"{name}: decoded in {time.time() - t0:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "decoded.npz", **out)
    (args.out / "groups.json").write_text(json.dumps({u["id"]: {"speaker": u["speaker"], "group": u["group"]} for u in utts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
