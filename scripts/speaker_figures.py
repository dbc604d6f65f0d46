#!/usr/bin/env python3
"""Figures and numbers for the speaker encoder and groups (paper Fig. 3 and sec. 3.1).

Uses the shipped models/speaker_encoder.onnx and models/speaker_groups.json (through the sender's
runtime classifier) on the LibriSpeech excerpts, and writes under docs/figures/speaker/:
  tsne_groups.png        t-SNE (perplexity 40) of training-speaker mean embeddings, C = 2..5,
                         colour = group, marker = sex from SPEAKERS.TXT
  group_sizes.png        speakers per group for C = 2..6 (train + validation)
  sex_vs_groups.png      fraction of female speakers per group for C = 2..6
  consistency.png        fraction of 3 s segments classified into their speaker's group (C = 2..6)
  scores_hist.png        same/different-speaker dot-product scores on held-out segments
  numbers.json           every number shown (EER, C=2 vs sex agreement, sizes, consistency)
  README.md              the numbers in words
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.sender import speaker_frontend as fe  # noqa: E402
from pnsc.sender.speaker_classifier import DEFAULT_ACTIVE_SECONDS, SpeakerClassifier  # noqa: E402
from pnsc.shared.audio import load_audio  # noqa: E402
from pnsc.training.corpus.librispeech import by_speaker, read_speakers_txt, scan_corpus  # noqa: E402
from pnsc.training.speaker.grouping import utterance_segments  # noqa: E402
from pnsc.training.speaker.metrics import equal_error_rate, pair_scores  # noqa: E402
from pnsc.shared.paths import LIBRISPEECH_EXCERPTS, shared_path  # noqa: E402

DEFAULT_CORPUS = shared_path(LIBRISPEECH_EXCERPTS)  # ../shared or $PNSC_SHARED_DIR


def embed_corpus(clf: SpeakerClassifier, utts):
    """Per-segment embeddings (3 s active segments) with speaker and utterance labels, and each
    utterance's own classify() input (its first seconds of active speech)."""
    seg_emb, seg_spk, seg_utt, utt_first = [], [], [], {}
    for spk, lst in by_speaker(utts).items():
        for u in lst:
            pcm = load_audio(u.path, quiet=True)
            feats = fe.active_features(pcm)
            for s in utterance_segments(feats, allow_short=True):
                seg_emb.append(clf.encoder.embed(s)), seg_spk.append(spk), seg_utt.append(u.utt_id)
            utt_first[u.utt_id] = (spk, feats[: int(DEFAULT_ACTIVE_SECONDS * fe.FRAMES_PER_SECOND)])
    return np.stack(seg_emb), np.array(seg_spk), np.array(seg_utt), utt_first


def nearest(points, cents):
    return np.argmin(((points[:, None, :] - cents[None]) ** 2).sum(axis=2), axis=1)


def best_permutation_agreement(labels: np.ndarray, truth: np.ndarray) -> float:
    vals = sorted(set(truth.tolist()))
    best = 0.0
    for perm in itertools.permutations(range(len(vals))):
        mapped = np.array([vals[perm[g]] if g < len(vals) else None for g in labels], dtype=object)
        best = max(best, float(np.mean(mapped == truth)))
    return best


def write_readme(d: dict, path: Path) -> None:
    """README.md beside the figures, with the numbers of ``numbers.json``."""
    c, e, s, f = d["consistency"], d["eer"], d["group_sizes"], d["female_fraction_per_group"]

    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    rows = "\n".join(
        f"| {k} | {fmt(c[k]['train_segments'])} | {fmt(c[k]['validation_segments'])} | {fmt(c[k]['test_other_segments'])} "
        f"| {s[k]['train']} | {s[k]['validation']} | {f[k]} |" for k in sorted(c, key=int))
    val = e.get("validation_speakers_segments")
    val_txt = (f"validation speakers {val['eer']:.3f} ({val['pairs']} pairs; same-speaker pairs are different "
               f"segments of one utterance), " if val else "")
    e_t, e_r = e["test_other_cross_utterance"], e["train_speakers_segments_seen"]
    d_c = str(max(int(k) for k in c if "test_other_utterances_classify" in c[k]))
    text = f"""# Speaker encoder and speaker groups: figures and numbers

Written by `scripts/speaker_figures.py` from the shipped `models/speaker_encoder.onnx` and
`models/speaker_groups.json` (run through the sender's onnxruntime classifier) on the LibriSpeech
excerpts. Every number below is in `numbers.json`.

Setup: {d['n_train_speakers']} training / {d['n_validation_speakers']} validation LibriSpeech train-clean-100
speakers ({d['splits']}; one ~12 s utterance each) and {d['n_test_other_speakers']} unseen test-other speakers
(10 utterances each). Embeddings are computed on 3 s segments of voice-active speech; a speaker's embedding is
the mean over its segments; groups are k-means (seed 0, 20 inits) on the training speakers, validation speakers
are assigned to the nearest centroid.

| file | content |
|---|---|
| `tsne_groups.png` | t-SNE (perplexity {d['tsne']['perplexity']:g}) of the {d['tsne']['points']} training speakers, C = 2..5; colour = group, o = female, ^ = male (SPEAKERS.TXT) |
| `group_sizes.png` | speakers per group (grey: validation) and female fraction per group, C = 2..6 |
| `consistency.png` | fraction of 3 s segments whose nearest centroid is their speaker's group |
| `scores_hist.png` | same/different-speaker dot-product scores on held-out speakers |

## Headline numbers
- C = 2 vs sex (best label permutation): **{d['c2_vs_sex']['agreement_all']:.3f}** on all speakers
  ({d['c2_vs_sex']['agreement_train']:.3f} on the training speakers); table {d['c2_vs_sex']['table']}.
- EER of same/different-speaker decisions (score z_i . z_j, 3 s segments): {val_txt}test-other
  {e_t['eer']:.3f} ({e_t['pairs']} pairs, same-speaker pairs from different utterances); training speakers
  (seen audio) {e_r['eer']:.3f}.
- C = 4 (shipped default): training sizes {s['4']['train']}, validation {s['4']['validation']}, test-other
  {s['4']['test_other']} (paper: 70/89/41/31 and 4/4/7/5).
- The sender's `classify()` on the first 6 s of active speech of each test-other utterance lands in the
  speaker's group (C = {d_c}) for {c[d_c]['test_other_utterances_classify']:.3f} of {c[d_c]['n_test_other_utterances']} utterances.
- Shipped assignment reproduced by the shipped encoder (nearest centroid of the mean): {d['assignment_reproduced']}.

| C | consistency train | validation | test-other | train sizes | validation sizes | female fraction per group |
|---|---|---|---|---|---|---|
{rows}

Notes from `speaker_groups.json`: {' '.join(d.get('notes') or []) or 'none'}
"""
    path.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "speaker")
    ap.add_argument("--perplexity", type=float, default=40.0)
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    args.out.mkdir(parents=True, exist_ok=True)
    clf = SpeakerClassifier()
    gdata = clf.groups_data
    sexes = {s: i.sex for s, i in read_speakers_txt(args.corpus / "SPEAKERS.TXT").items()}
    split = {s: v["split"] for s, v in gdata["speakers"].items()}
    Cs = sorted(int(c) for c in gdata["groupings"])

    tr_emb, tr_spk, tr_utt, tr_first = embed_corpus(clf, scan_corpus(args.corpus, ["train-clean-100"]))
    te_emb, te_spk, te_utt, te_first = embed_corpus(clf, scan_corpus(args.corpus, ["test-other"]))
    speakers = sorted(set(tr_spk.tolist()), key=int)
    means = np.stack([tr_emb[tr_spk == s].mean(axis=0) for s in speakers])
    test_speakers = sorted(set(te_spk.tolist()), key=int)
    te_means = np.stack([te_emb[te_spk == s].mean(axis=0) for s in test_speakers])
    is_train = np.array([split.get(s) == "train" for s in speakers])
    is_val = np.array([split.get(s) == "validation" for s in speakers])
    sex = np.array([sexes.get(s, "?") for s in speakers])

    numbers: dict = {"corpus": str(args.corpus), "encoder": str(clf.encoder.path), "splits": gdata.get("splits"),
                     "n_train_speakers": int(is_train.sum()), "n_validation_speakers": int(is_val.sum()),
                     "n_test_other_speakers": len(test_speakers), "segment_seconds": 3.0}

    # ---- groups as shipped (train: k-means labels, validation: nearest centroid) -----------------
    shipped = {c: np.array([gdata["groupings"][str(c)]["assignment"][s] for s in speakers]) for c in Cs}
    cents = {c: np.asarray(gdata["groupings"][str(c)]["centroids"]) for c in Cs}
    # the shipped assignment must be what the shipped encoder gives now (nearest centroid of the mean)
    numbers["assignment_reproduced"] = {str(c): float(np.mean(nearest(means, cents[c]) == shipped[c])) for c in Cs}

    # ---- C = 2 vs sex -------------------------------------------------------------------------------
    known = sex != "?"
    numbers["c2_vs_sex"] = {
        "agreement_all": best_permutation_agreement(shipped[2][known], sex[known]),
        "agreement_train": best_permutation_agreement(shipped[2][known & is_train], sex[known & is_train]),
        "table": {f"group{g}": {x: int(np.sum((shipped[2] == g) & (sex == x))) for x in ("F", "M")} for g in range(2)},
    }
    numbers["female_fraction_per_group"] = {
        str(c): [round(float(np.mean(sex[shipped[c] == g] == "F")), 3) if np.any(shipped[c] == g) else None
                 for g in range(c)] for c in Cs}
    numbers["group_sizes"] = {str(c): {"train": np.bincount(shipped[c][is_train], minlength=c).tolist(),
                                       "validation": np.bincount(shipped[c][is_val], minlength=c).tolist(),
                                       "test_other": np.bincount(nearest(te_means, cents[c]), minlength=c).tolist()}
                              for c in Cs}

    # ---- consistency: 3 s segments (and utterance starts) landing in their speaker's group ----------
    spk_index = {s: i for i, s in enumerate(speakers)}
    te_index = {s: i for i, s in enumerate(test_speakers)}
    cons = {}
    for c in Cs:
        seg_g = nearest(tr_emb, cents[c])
        own = shipped[c][[spk_index[s] for s in tr_spk]]
        seg_tr = np.array([is_train[spk_index[s]] for s in tr_spk])
        te_own = nearest(te_means, cents[c])[[te_index[s] for s in te_spk]]
        te_seg_g = nearest(te_emb, cents[c])
        cons[str(c)] = {
            "train_segments": float(np.mean(seg_g[seg_tr] == own[seg_tr])),
            "validation_segments": float(np.mean(seg_g[~seg_tr] == own[~seg_tr])) if (~seg_tr).any() else None,
            "test_other_segments": float(np.mean(te_seg_g == te_own)),
            "n_segments": {"train": int(seg_tr.sum()), "validation": int((~seg_tr).sum()), "test_other": len(te_emb)},
        }
    # utterance level for test-other (10 utterances per speaker) with the sender's classify()
    utt_ok = []
    for utt, (spk, feats) in sorted(te_first.items()):
        if len(feats) >= 150:
            z, _ = clf.embed_features(feats)
            utt_ok.append(nearest(z[None], cents[clf.num_groups])[0]
                          == nearest(te_means[te_index[spk]][None], cents[clf.num_groups])[0])
    cons[str(clf.num_groups)]["test_other_utterances_classify"] = float(np.mean(utt_ok))
    cons[str(clf.num_groups)]["n_test_other_utterances"] = len(utt_ok)
    numbers["consistency"] = cons

    # ---- EER of same/different-speaker decisions (dot-product score) ---------------------------------
    eer = {}
    seg_is_val = np.array([is_val[spk_index[s]] for s in tr_spk])
    if seg_is_val.any():
        sc_v, y_v = pair_scores(tr_emb[seg_is_val], tr_spk[seg_is_val])
        eer["validation_speakers_segments"] = {"eer": equal_error_rate(sc_v, y_v)[0], "pairs": int(len(y_v)),
                                               "same_pairs": int(y_v.sum()),
                                               "note": "one utterance per speaker: same pairs = different segments"}
    sc_t, y_t = pair_scores(te_emb, te_spk, te_utt)
    eer["test_other_cross_utterance"] = {"eer": equal_error_rate(sc_t, y_t)[0], "pairs": int(len(y_t)),
                                         "same_pairs": int(y_t.sum())}
    seg_is_tr = ~seg_is_val
    sc_r, y_r = pair_scores(tr_emb[seg_is_tr], tr_spk[seg_is_tr])
    eer["train_speakers_segments_seen"] = {"eer": equal_error_rate(sc_r, y_r)[0], "pairs": int(len(y_r)),
                                           "note": "training audio (not held out), for reference"}
    numbers["eer"] = eer
    numbers["training"] = gdata.get("training")
    numbers["notes"] = gdata.get("notes", [])

    # ---- figures ------------------------------------------------------------------------------------
    tr_means = means[is_train]
    perp = min(args.perplexity, (len(tr_means) - 1) / 3)
    xy = TSNE(n_components=2, perplexity=perp, random_state=0, init="pca").fit_transform(tr_means)
    numbers["tsne"] = {"perplexity": perp, "points": int(len(tr_means)), "random_state": 0}
    show = [c for c in Cs if 2 <= c <= 5]
    fig, axes = plt.subplots(1, len(show), figsize=(3.2 * len(show), 3.3))
    colors = plt.cm.tab10.colors
    for ax, c in zip(np.atleast_1d(axes), show):
        lab = shipped[c][is_train]
        sx = sex[is_train]
        for g in range(c):
            for s, mk in (("F", "o"), ("M", "^")):
                m = (lab == g) & (sx == s)
                ax.scatter(xy[m, 0], xy[m, 1], s=12, marker=mk, color=colors[g], alpha=0.8,
                           label=f"{s}" if g == 0 else None)
        ax.set_title(f"C = {c}")
        ax.set_xticks([]), ax.set_yticks([])
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=7, title="sex (o F, ^ M)", title_fontsize=7)
    fig.suptitle(f"t-SNE (perplexity {perp:g}) of {len(tr_means)} training speakers; colour = group", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "tsne_groups.png", dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for i, c in enumerate(Cs):
        tr_sz = np.array(numbers["group_sizes"][str(c)]["train"])
        va_sz = np.array(numbers["group_sizes"][str(c)]["validation"])
        x = i + np.linspace(-0.35, 0.35, c)
        axes[0].bar(x, tr_sz, width=0.6 / c, color=[colors[g] for g in range(c)])
        axes[0].bar(x, va_sz, width=0.6 / c, bottom=tr_sz, color="k", alpha=0.35)
        ff = numbers["female_fraction_per_group"][str(c)]
        axes[1].bar(x, [f if f is not None else 0 for f in ff], width=0.6 / c, color=[colors[g] for g in range(c)])
    for ax, t in zip(axes, ("speakers per group (grey: validation)", "female fraction per group")):
        ax.set_xticks(range(len(Cs)), [f"C={c}" for c in Cs])
        ax.set_title(t, fontsize=9)
    axes[1].axhline(0.5, color="k", lw=0.5)
    fig.tight_layout()
    fig.savefig(args.out / "group_sizes.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 3))
    for key, mk in (("train_segments", "o-"), ("validation_segments", "s-"), ("test_other_segments", "^-")):
        vals = [cons[str(c)][key] for c in Cs]
        if all(v is not None for v in vals):
            ax.plot(Cs, vals, mk, label=key.replace("_", " "))
    ax.set_xlabel("C")
    ax.set_ylabel("fraction in speaker's group")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("3 s segment classification consistency", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "consistency.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 3))
    sc, y = (sc_v, y_v) if seg_is_val.any() else (sc_t, y_t)
    bins = np.linspace(min(sc_t.min(), sc.min()), max(sc_t.max(), sc.max()), 50)
    ax.hist(sc_t[y_t], bins=bins, density=True, alpha=0.5, label="test-other same")
    ax.hist(sc_t[~y_t], bins=bins, density=True, alpha=0.5, label="test-other different")
    if seg_is_val.any():
        ax.hist(sc_v[y_v], bins=bins, density=True, histtype="step", label="validation same")
        ax.hist(sc_v[~y_v], bins=bins, density=True, histtype="step", label="validation different")
    ax.set_xlabel("pair score z_i . z_j")
    ax.legend(fontsize=7)
    ax.set_title("EER " + ", ".join(f"{k.split('_')[0]} {v['eer']:.3f}" for k, v in eer.items()), fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "scores_hist.png", dpi=80)
    plt.close(fig)

    (args.out / "numbers.json").write_text(json.dumps(numbers, indent=1) + "\n")
    write_readme(numbers, args.out / "README.md")
    print(json.dumps({"c2_vs_sex": numbers["c2_vs_sex"]["agreement_all"], "eer": {k: v["eer"] for k, v in eer.items()},
                      "sizes_C4": numbers["group_sizes"].get("4"), "consistency_C4": cons.get("4")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
