#!/usr/bin/env python3
"""Build the pnsc training corpus (LibriSpeech layout + manifest), its speaker splits and audio shards.

    python scripts/build_corpus.py asterisk                 # real studio speech, Debian fr/it/ru G.722
    python scripts/build_corpus.py kde                      # real speech, Debian klettres-data + ktuberling-data
    python scripts/build_corpus.py synth piper --budget-min 10 --minutes-per-speaker 12
    python scripts/build_corpus.py synth kokoro --budget-min 30 --minutes-per-speaker 6
    python scripts/build_corpus.py manifest                 # manifest.json, SPEAKERS.TXT, splits.json
    python scripts/build_corpus.py shards                   # data/audio_shards/*.tar + index.json
    python scripts/build_corpus.py all                      # all of the above with the defaults below

Paper setup on a full LibriSpeech download (real speech only):
    python scripts/build_corpus.py --librispeech /data/LibriSpeech --corpus data/corpus-paper \
        manifest --subsets train-clean-100,dev-clean --real-only
    python scripts/build_corpus.py --corpus data/corpus-paper shards --out data/audio_shards-paper

Defaults read LibriSpeech from ../shared/data/librispeech-excerpts (or --librispeech PATH, e.g. a full
download with train-clean-100 and dev-clean) and write under data/.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.shared.paths import LIBRISPEECH_EXCERPTS, shared_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=REPO / "data" / "corpus", help="generated corpus root")
    p.add_argument("--librispeech", type=Path, default=shared_path(LIBRISPEECH_EXCERPTS))
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("asterisk", help="decode Debian asterisk-core-sounds-{fr,it,ru}-g722")
    a.add_argument("--workdir", type=Path, default=REPO / "data" / "debs")
    a.add_argument("--languages", default="fr,it,ru")
    v = sub.add_parser("vcc2016", help="link the VCC 2016 studio speakers (../shared/data/vcc2016)")
    v.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "vcc2016")
    k = sub.add_parser("kde", help="decode Debian klettres-data and ktuberling-data (real words, letters, syllables)")
    k.add_argument("--workdir", type=Path, default=REPO / "data" / "debs")
    k.add_argument("--sources", default="klettres,ktuberling")
    s = sub.add_parser("synth", help="generate pseudo-speakers (piper or kokoro)")
    s.add_argument("source", choices=["piper", "kokoro"])
    s.add_argument("--budget-min", type=float, default=30.0, help="wall-clock budget in minutes")
    s.add_argument("--minutes-per-speaker", type=float, default=10.0)
    s.add_argument("--probe", type=int, default=4, help="utterances per candidate for the distinctness check")
    s.add_argument("--min-accuracy", type=float, default=0.75)
    s.add_argument("--threads", type=int, default=1)
    m = sub.add_parser("manifest", help="write manifest.json, SPEAKERS.TXT and the speaker splits")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--n-val", type=int, default=20, help="validation speakers among LibriSpeech train-clean-100")
    m.add_argument("--splits", type=Path, default=REPO / "data" / "splits.json")
    m.add_argument("--splits-copy", type=Path, default=REPO / "models" / "speaker_splits.json")
    m.add_argument("--subsets", default=None,
                   help="LibriSpeech subsets to read, comma-separated (default: all found), "
                        "e.g. train-clean-100,dev-clean on a full download")
    m.add_argument("--real-only", action="store_true", help="leave out the synthetic sources (Piper, Kokoro); real ones stay")
    sh = sub.add_parser("shards", help="pack the corpus into FLAC audio shards (tar) with an index")
    sh.add_argument("--out", type=Path, default=REPO / "data" / "audio_shards")
    sh.add_argument("--target-mib", type=float, default=25.0, help="shard size: the committed training state plus one shard must fit a device call's 64 MiB carry")
    al = sub.add_parser("all", help="asterisk + vcc2016 + kde + piper + kokoro + manifest + shards")
    al.add_argument("--piper-budget-min", type=float, default=10.0)
    al.add_argument("--kokoro-budget-min", type=float, default=30.0)
    args = p.parse_args(argv)
    t0 = time.monotonic()
    if args.cmd == "all":
        common = ["--corpus", str(args.corpus), "--librispeech", str(args.librispeech)]
        for step in (["asterisk"], ["vcc2016"], ["kde"],
                     ["synth", "piper", "--budget-min", str(args.piper_budget_min), "--minutes-per-speaker", "12"],
                     ["synth", "kokoro", "--budget-min", str(args.kokoro_budget_min), "--minutes-per-speaker", "6"],
                     ["manifest"], ["shards"]):
            print(f"== build_corpus.py {' '.join(step)}", flush=True)
            main(common + step)
        return 0

    if args.cmd == "asterisk":
        from pnsc.training.corpus.sources import asterisk

        for lang in args.languages.split(","):
            voice_dir = asterisk.fetch_package(lang.strip(), args.workdir)
            r = asterisk.build_language(lang.strip(), voice_dir, args.corpus)
            print(f"{r.speaker}: {r.files} files, {r.seconds / 60:.1f} min")
    elif args.cmd == "kde":
        from pnsc.training.corpus.sources import kde

        for name in (x.strip() for x in args.sources.split(",")):
            try:
                r = kde.build_source(name, kde.fetch_package(name, args.workdir), args.corpus)
            except kde.KdeError as exc:
                print(f"pnsc: error: {exc}", file=sys.stderr)
                return 2
            print(f"{name}: {len(r.speakers)} speakers, {r.clips} clips, {r.seconds / 60:.1f} min; dropped "
                  + (", ".join(f"{v} {k}" for k, v in sorted(r.dropped.items())) or "none"))
            for lang, sp in sorted(r.splits.items()):
                print(f"  {lang}: pitch clusters {sp['pitch_clusters_hz']} Hz ({sp['clips']} clips), encoder "
                      f"distance {sp['encoder_distance']} -> {'two voices' if sp['split'] else 'one voice'}")
            for spk, info in sorted(r.speakers.items()):
                print(f"  {spk:14s} {info['sex']} {info['clips']:4d} clips {info['minutes']:5.2f} min "
                      f"F0 {info['f0_hz']} Hz")
    elif args.cmd == "vcc2016":
        from pnsc.training.corpus.sources.vcc2016 import link_corpus

        for spk in link_corpus(args.root, args.corpus):
            print(f"{spk.speaker} ({spk.sex}): {spk.files} files")
    elif args.cmd == "synth":
        from pnsc.training.corpus.synth import generate

        r = generate(args.source, args.corpus, args.budget_min * 60, args.minutes_per_speaker, args.probe,
                     args.min_accuracy, args.threads)
        print(r)
    elif args.cmd == "manifest":
        from pnsc.training.corpus.manifest import build_manifest

        subsets = [x.strip() for x in args.subsets.split(",")] if args.subsets else None
        man = build_manifest(args.corpus, args.librispeech, seed=args.seed, n_val=args.n_val,
                             splits_path=args.splits, splits_copy=args.splits_copy, subsets=subsets,
                             include_generated=not args.real_only)
        for line in man["summary_lines"]:
            print(line)
    elif args.cmd == "shards":
        from pnsc.training.corpus.shards import build_audio_shards

        idx = build_audio_shards(args.corpus / "manifest.json", args.out, target_mib=args.target_mib)
        sizes = [s["bytes"] for s in idx["shards"]]
        print(f"{len(sizes)} audio shards, {sum(sizes) / 2**20:.1f} MiB, largest {max(sizes) / 2**20:.1f} MiB")
    print(f"done in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
