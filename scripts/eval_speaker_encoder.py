#!/usr/bin/env python3
"""Numbers of one speaker classifier (encoder ONNX + speaker_groups.json), for comparing retrains.

Runs the classifier of ``--models`` (default: the shipped models/) through onnxruntime on
  * the LibriSpeech excerpts: train-clean-100 (training + 20 validation speakers) and test-other,
  * optionally the local corpus' studio speakers (``--extra-corpus data/corpus``): only utterances
    from index ``--extra-skip`` on, i.e. utterances the retrained encoder never saw
    (scripts/train_speaker_encoder.py --extra-max-utterances 60 uses the first 60),
and prints one JSON object:
  c2_vs_sex        C = 2 groups vs sex (best label permutation) on the 251 LibriSpeech speakers,
                   and on every grouped speaker with a known sex
  eer              same/different-speaker EER: validation-speaker segments, test-other cross-utterance
  held_out         fraction of 3 s segments in their speaker's group (C = default) for the validation
                   speakers, test-other, and the studio speakers' unseen utterances; test-other
                   utterance-level classify() on each utterance's first seconds
  sizes            train / validation speakers per group (C = default)
  studio           per studio speaker: group (k-means assignment if it was a training speaker, else the
                   nearest centroid of its mean), sex, share of its unseen segments in that group

Usage: python scripts/eval_speaker_encoder.py [--models DIR] [--extra-corpus data/corpus] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from pnsc.sender.speaker_classifier import SpeakerClassifier  # noqa: E402
from pnsc.training.corpus.librispeech import read_speakers_txt, scan_corpus  # noqa: E402
from pnsc.training.speaker.metrics import equal_error_rate, pair_scores  # noqa: E402
from speaker_figures import DEFAULT_CORPUS, best_permutation_agreement, embed_corpus, nearest  # noqa: E402


def studio_utterances(root: Path, subsets: list[str], skip: int, take: int):
    """Utterances ``skip .. skip + take`` (sorted order) of every speaker of the studio subsets."""
    out, count = [], {}
    for u in scan_corpus(root, subsets):
        i = count[u.speaker] = count.get(u.speaker, 0) + 1
        if skip < i <= skip + take:
            out.append(u)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--extra-corpus", type=Path, default=None)
    ap.add_argument("--extra-subsets", nargs="+", default=["studio-vcc2016", "studio-asterisk"])
    ap.add_argument("--extra-skip", type=int, default=60, help="skip the first N utterances of each studio speaker")
    ap.add_argument("--extra-take", type=int, default=30, help="then use this many utterances per studio speaker")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    for f in ("speaker_encoder.onnx", "speaker_groups.json"):
        if not (args.models / f).is_file():
            print(f"pnsc: error: {args.models / f} not found", file=sys.stderr)
            return 2
    clf = SpeakerClassifier(encoder_path=args.models / "speaker_encoder.onnx",
                            groups_path=args.models / "speaker_groups.json")
    g = clf.groups_data
    C = str(clf.num_groups)
    cents = {c: np.asarray(v["centroids"]) for c, v in g["groupings"].items()}
    assign = {c: v["assignment"] for c, v in g["groupings"].items()}
    split = {s: v["split"] for s, v in g["speakers"].items()}
    sex = {s: i.sex for s, i in read_speakers_txt(args.corpus / "SPEAKERS.TXT").items()}
    sex.update({s: v.get("sex", "?") for s, v in g["speakers"].items() if v.get("sex", "?") != "?"})

    tr_emb, tr_spk, tr_utt, _ = embed_corpus(clf, scan_corpus(args.corpus, ["train-clean-100"]))
    te_emb, te_spk, te_utt, te_first = embed_corpus(clf, scan_corpus(args.corpus, ["test-other"]))
    libri = sorted(set(tr_spk.tolist()), key=int)

    def agree(spks):
        spks = [s for s in spks if sex.get(s, "?") in ("F", "M") and s in assign["2"]]
        lab = np.array([assign["2"][s] for s in spks])
        return round(best_permutation_agreement(lab, np.array([sex[s] for s in spks])), 4), len(spks)

    res: dict = {"models": str(args.models), "extra_corpus": g.get("extra_corpus"), "C": int(C)}
    a_l, n_l = agree(libri)
    a_all, n_all = agree(list(assign["2"]))
    res["c2_vs_sex"] = {"librispeech_251": a_l, "n_librispeech": n_l, "all_grouped": a_all, "n_all": n_all}

    is_val = np.array([split.get(s) == "validation" for s in tr_spk])
    sc_v, y_v = pair_scores(tr_emb[is_val], tr_spk[is_val])
    sc_t, y_t = pair_scores(te_emb, te_spk, te_utt)
    res["eer"] = {"validation_segments": round(equal_error_rate(sc_v, y_v)[0], 4),
                  "test_other_cross_utterance": round(equal_error_rate(sc_t, y_t)[0], 4)}

    def seg_consistency(emb, spk, group_of):
        return round(float(np.mean(nearest(emb, cents[C]) == np.array([group_of[s] for s in spk]))), 4)

    val_group = {s: int(assign[C][s]) for s in set(tr_spk[is_val].tolist())}
    te_means = {s: te_emb[te_spk == s].mean(axis=0) for s in set(te_spk.tolist())}
    te_group = {s: int(nearest(m[None], cents[C])[0]) for s, m in te_means.items()}
    utt_ok = [clf.classify_features(feats).group == te_group[spk]
              for spk, feats in te_first.values() if len(feats) >= 150]
    res["held_out"] = {"validation_segments": seg_consistency(tr_emb[is_val], tr_spk[is_val], val_group),
                       "test_other_segments": seg_consistency(te_emb, te_spk, te_group),
                       "test_other_utterances_classify": round(float(np.mean(utt_ok)), 4),
                       "n_test_other_utterances": len(utt_ok)}
    res["sizes"] = {"train": g["groupings"][C]["train_sizes"], "validation": g["groupings"][C]["validation_sizes"],
                    "test_other": np.bincount(list(te_group.values()), minlength=int(C)).tolist()}

    if args.extra_corpus is not None:
        man = args.extra_corpus / "manifest.json"
        if man.is_file():
            sex.update({str(r["speaker"]): str(r.get("sex", "?")) for r in json.loads(man.read_text())["speakers"]
                        if str(r.get("sex", "?")) in ("F", "M")})
        ex_emb, ex_spk, _, _ = embed_corpus(clf, studio_utterances(args.extra_corpus, args.extra_subsets,
                                                                   args.extra_skip, args.extra_take))
        studio, own = {}, {}
        for s in sorted(set(ex_spk.tolist())):
            m = ex_spk == s
            grp = int(assign[C][s]) if s in assign[C] else int(nearest(ex_emb[m].mean(axis=0)[None], cents[C])[0])
            own[s] = grp
            studio[s] = {"group": grp, "in_kmeans": s in assign[C], "sex": sex.get(s, "?"),
                         "c2": int(assign["2"][s]) if s in assign["2"] else
                         int(nearest(ex_emb[m].mean(axis=0)[None], cents["2"])[0]),
                         "unseen_segments_in_group": round(float(np.mean(nearest(ex_emb[m], cents[C]) == grp)), 3),
                         "n_segments": int(m.sum())}
        res["studio"] = studio
        known = [s for s in studio if studio[s]["sex"] in ("F", "M")]
        if known:
            res["c2_vs_sex"]["studio"] = round(best_permutation_agreement(
                np.array([studio[s]["c2"] for s in known]), np.array([studio[s]["sex"] for s in known])), 4)
        res["held_out"]["studio_unseen_segments"] = seg_consistency(ex_emb, ex_spk, own)
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
