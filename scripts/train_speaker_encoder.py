#!/usr/bin/env python3
"""Train the Siamese GRU speaker encoder (paper sec. 2.2) and group the speakers by k-means (2.3).

Writes
  data/speaker/encoder.pt            torch checkpoint (weights, normalisation, training log)
  models/speaker_encoder.onnx        encoder, dynamic batch and time axes (run by onnxruntime)
  models/speaker_groups.json         centroids + speaker->group map for C = 2..6 (C = 4 default),
                                     validation speakers assigned to the nearest centroid
  data/speaker/embeddings.npz        per-segment and per-speaker embeddings (for the figures)

Training speakers: the 231 train speakers of models/speaker_splits.json when it exists, else the
same LibriSpeech split computed by training.corpus.splits.make_splits (seed 0, 20 validation).
--extra-corpus adds the real studio speakers of the local corpus (data/corpus, LibriSpeech layout:
studio-vcc2016, studio-asterisk): only speakers listed as *train* in the splits file are used
(never validation/test, never Debian asterisk-core-sounds-en/-es), at most --extra-max-utterances
utterances each; their sex comes from the corpus manifest.json.  Positive pairs: two different 2-3 s crops of active speech of one
speaker; negative pairs: crops of two different speakers; 50 % each; BCE on dot-product logits
(eq. 1); Adam 1e-3.  Every crop gets a random smooth spectral tilt (--eq-aug, channel
augmentation): with one recording per speaker, positive pairs always share the recording channel,
and without it the encoder learnt the channel rather than the voice (C = 2 did not follow sex).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.sender import speaker_frontend as fe  # noqa: E402
from pnsc.sender.speaker_classifier import MIN_ACTIVE_FRAMES, SEGMENT_FRAMES, SpeakerEncoderRuntime  # noqa: E402
from pnsc.shared.audio import load_audio  # noqa: E402
from pnsc.training.corpus.librispeech import by_speaker, read_speakers_txt, scan_corpus  # noqa: E402
from pnsc.training.speaker.grouping import (KMEANS_INITS, KMEANS_SEED, kmeans_groups, nearest,  # noqa: E402
                                       read_speaker_splits, utterance_segments)
from pnsc.training.speaker.metrics import equal_error_rate, pair_scores  # noqa: E402
from pnsc.shared.paths import LIBRISPEECH_EXCERPTS, shared_path  # noqa: E402

DEFAULT_CORPUS = shared_path(LIBRISPEECH_EXCERPTS)  # ../shared or $PNSC_SHARED_DIR


def load_active(utts) -> dict[str, list[np.ndarray]]:
    """speaker -> list of active log-spectrum arrays, one per utterance (sorted order)."""
    out: dict[str, list[np.ndarray]] = {}
    for spk, lst in by_speaker(utts).items():
        out[spk] = [fe.active_features(load_audio(u.path, quiet=True)) for u in lst]
    return out


def crop(rng, feats: np.ndarray, length: int, avoid: tuple[int, int] | None = None) -> tuple[int, int]:
    n = len(feats)
    if n <= length:
        return 0, n
    if avoid is not None:
        a0, a1 = avoid
        choices = [s for s in (range(0, max(0, a0 - length) + 1), range(a1, n - length + 1)) if len(s)]
        if choices:
            sizes = np.array([len(r) for r in choices], dtype=float)
            r = choices[rng.choice(len(choices), p=sizes / sizes.sum())]
            s = int(r[rng.integers(len(r))])
            return s, s + length
    s = int(rng.integers(0, n - length + 1))
    return s, s + length


def make_batch(rng, data: list[np.ndarray], pairs: int, length: int):
    """data: one concatenated active-feature array per training speaker.

    Positive pairs come from speakers with at least two non-overlapping crops of ``length`` frames,
    negative pairs from speakers with at least one; every crop in a batch has ``length`` frames.
    """
    lens = np.array([len(d) for d in data])
    pos_pool = np.flatnonzero(lens >= 2 * length)
    neg_pool = np.flatnonzero(lens >= length)
    a, b, same = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            s = int(pos_pool[rng.integers(len(pos_pool))])
            c1 = crop(rng, data[s], length)
            c2 = crop(rng, data[s], length, avoid=c1)
            a.append(data[s][c1[0]:c1[1]]), b.append(data[s][c2[0]:c2[1]]), same.append(1)
        else:
            s, t = rng.choice(neg_pool, size=2, replace=False)
            c1, c2 = crop(rng, data[s], length), crop(rng, data[t], length)
            a.append(data[s][c1[0]:c1[1]]), b.append(data[t][c2[0]:c2[1]]), same.append(0)
    return np.stack(a), np.stack(b), np.array(same, dtype=np.float32)


def random_eq(rng, x: np.ndarray, std: float) -> np.ndarray:
    """Add a random smooth log-spectral curve (cosines of order 1..4) to each crop of (B, T, F)."""
    f = np.arange(x.shape[2]) / (x.shape[2] - 1)
    basis = np.stack([np.cos(np.pi * k * f) for k in range(1, 5)])  # (4, F)
    curves = rng.normal(0.0, std, size=(x.shape[0], 4)) @ basis
    return (x + curves[:, None, :]).astype(np.float32)


def align_labels(cents: np.ndarray, labels: np.ndarray, speakers: list[str], old: dict[str, int]):
    """Renumber groups to overlap most with a previous assignment (Hungarian on the overlap counts)."""
    from scipy.optimize import linear_sum_assignment

    c = len(cents)
    overlap = np.zeros((c, c))
    for spk, g in zip(speakers, labels):
        if spk in old and int(old[spk]) < c:
            overlap[g, int(old[spk])] += 1
    rows, cols = linear_sum_assignment(-overlap)
    perm = np.empty(c, dtype=int)
    perm[rows] = cols
    new_cents = np.empty_like(cents)
    new_cents[perm] = cents
    return new_cents, perm[labels]


def segment_table(active: dict[str, list[np.ndarray]], speakers: list[str], allow_short: bool = False):
    segs, spk_of, utt_of = [], [], []
    for spk in speakers:
        for ui, feats in enumerate(active[spk]):
            for s in utterance_segments(feats, allow_short=allow_short):
                segs.append(s), spk_of.append(spk), utt_of.append(f"{spk}/{ui}")
    return segs, spk_of, utt_of


FORBIDDEN_EXTRA = ("ast_en", "ast_es")  # held-out evaluation material (asterisk-core-sounds-en*/-es*)


def speaker_key(s: str) -> tuple:
    """Sort key: numeric LibriSpeech ids first (by value), then the named studio speakers."""
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def extra_speakers(root: Path, subsets: list[str], train_ids: set[str], max_utts: int):
    """(utterances, sex table) of the train-split speakers of the local corpus' extra subsets."""
    utts = [u for u in scan_corpus(root, subsets) if u.speaker in train_ids]
    bad = sorted({u.speaker for u in utts if u.speaker.lower().startswith(FORBIDDEN_EXTRA)})
    if bad:
        raise SystemExit(f"pnsc: error: refusing held-out speakers {bad} from {root}")
    kept, count = [], {}
    for u in utts:
        count[u.speaker] = count.get(u.speaker, 0) + 1
        if count[u.speaker] <= max_utts:
            kept.append(u)
    sexes = {}
    man = root / "manifest.json"
    if man.is_file():
        sexes = {str(r["speaker"]): str(r.get("sex", "?")) for r in json.loads(man.read_text()).get("speakers", [])}
    return kept, sexes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--splits", type=Path, default=REPO / "models" / "speaker_splits.json")
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--workdir", type=Path, default=REPO / "data" / "speaker")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--max-minutes", type=float, default=12.0, help="stop training after this much time")
    ap.add_argument("--pairs", type=int, default=64, help="pairs per batch (half positive)")
    ap.add_argument("--min-crop", type=float, default=2.0)
    ap.add_argument("--max-crop", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--align-to", type=Path, default=None,
                    help="number the groups to match a previous speaker_groups.json as far as possible "
                         "(keeps group indices stable across retrains); default: by decreasing size")
    ap.add_argument("--note", action="append", default=[], help="free-text note stored in speaker_groups.json")
    ap.add_argument("--resume", type=Path, default=None,
                    help="start from this checkpoint (weights + normalisation); --steps 0 only re-exports and regroups")
    ap.add_argument("--default-groups", type=int, default=4)
    ap.add_argument("--extra-corpus", type=Path, default=None,
                    help="local corpus folder (data/corpus) whose train-split studio speakers are added")
    ap.add_argument("--extra-subsets", nargs="+", default=["studio-vcc2016", "studio-asterisk"])
    ap.add_argument("--extra-max-utterances", type=int, default=60,
                    help="at most this many utterances (sorted order) per extra speaker")
    ap.add_argument("--no-split-fallback", action="store_true",
                    help="without a splits file, train on all 251 speakers instead of computing the split")
    ap.add_argument("--cmn", action="store_true",
                    help="remove the per-bin mean of each segment (default: only the level; CMN learnt poorly here)")
    ap.add_argument("--eq-aug", type=float, default=0.5,
                    help="std (nepers) of a random smooth spectral tilt added to every crop (channel augmentation)")
    args = ap.parse_args(argv)

    import torch

    from pnsc.training.speaker.model import EMBED_DIM, SpeakerEncoder, siamese_bce

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.time()

    speakers_txt = read_speakers_txt(args.corpus / "SPEAKERS.TXT")
    train_utts = scan_corpus(args.corpus, ["train-clean-100"])
    splits = read_speaker_splits(args.splits)
    extra_sex: dict[str, str] = {}
    if args.extra_corpus is not None:
        if splits is None:
            raise SystemExit(f"pnsc: error: --extra-corpus needs the splits file {args.splits}")
        extra_utts, extra_sex = extra_speakers(args.extra_corpus, args.extra_subsets, set(splits[0]),
                                               args.extra_max_utterances)
        train_utts = train_utts + extra_utts
        print(f"extra speakers from {args.extra_corpus}: {sorted(by_speaker(extra_utts))} "
              f"({len(extra_utts)} utterances)", flush=True)
    all_train = sorted(by_speaker(train_utts))
    if splits is None and args.no_split_fallback:
        train_spk, val_spk = all_train, []
        split_note = f"{args.splits.name} not found: all {len(all_train)} train-clean-100 speakers used for training"
    elif splits is None:
        # the corpus helper's own split function: its LibriSpeech part (seed 0, 20 validation
        # speakers drawn first, stratified by sex) is what models/speaker_splits.json will hold
        from pnsc.training.corpus.splits import make_splits

        recs = [{"speaker": s, "source": "librispeech", "subset": "train-clean-100",
                 "sex": speakers_txt[s].sex if s in speakers_txt else "?", "real": True} for s in all_train]
        made = make_splits(recs, seed=0, n_val=20)
        train_spk, val_spk = sorted(made["train"]), sorted(made["validation"])
        split_note = (f"{args.splits.name} not found: LibriSpeech split computed with "
                      f"training.corpus.splits.make_splits(seed=0, n_val=20): {len(train_spk)} train / "
                      f"{len(val_spk)} validation")
    else:
        train_spk = sorted(s for s in splits[0] if s in set(all_train))
        val_spk = sorted(s for s in splits[1] if s in set(all_train))
        split_note = f"splits from {args.splits.name}: {len(train_spk)} train / {len(val_spk)} validation"
    print(split_note, flush=True)

    active = load_active(train_utts)
    test_utts = scan_corpus(args.corpus, ["test-other"])
    active_test = load_active(test_utts)
    test_spk = sorted(active_test)
    print(f"features: {time.time() - t_start:.1f} s", flush=True)

    data = [np.concatenate(active[s]) for s in train_spk]
    # statistics after the model's own mean removal (per speaker here, per segment in the model)
    allf = np.concatenate([d - (d.mean() if not args.cmn else d.mean(axis=0)) for d in data])
    norm_mean, norm_std = allf.mean(axis=0), allf.std(axis=0)
    del allf

    model = SpeakerEncoder(cmn=args.cmn)
    model.set_normalisation(torch.from_numpy(norm_mean.astype(np.float32)), torch.from_numpy(norm_std.astype(np.float32)))
    prev = {"steps": 0, "minutes": 0.0, "log": []}
    if args.resume is not None:
        ckpt = torch.load(args.resume, map_location="cpu", weights_only=False)
        if bool(ckpt.get("cmn", False)) != args.cmn:
            raise SystemExit(f"{args.resume}: cmn={ckpt.get('cmn')} does not match --cmn={args.cmn}")
        model.load_state_dict(ckpt["state_dict"])
        prev = {"steps": int(ckpt["steps"]), "minutes": float(ckpt["train_minutes"]), "log": list(ckpt["log"])}
        print(f"resumed {args.resume}: {prev['steps']} steps, {prev['minutes']:.1f} min", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    # held-out same/different check during training: validation speakers' segments (if any) + test-other
    ho_spk = val_spk
    ho_segs, ho_lab, _ = segment_table(active, ho_spk) if ho_spk else ([], [], [])
    te_segs, te_lab, te_utt = segment_table(active_test, test_spk)

    def embed_torch(segs):
        model.eval()
        with torch.no_grad():
            out = np.stack([model(torch.from_numpy(s[None])).numpy()[0] for s in segs])
        model.train()
        return out

    log = []
    t_train = time.time()
    min_len, max_len = int(args.min_crop * 100), int(args.max_crop * 100)
    step = 0
    run_loss, run_acc = 0.0, 0.0
    for step in range(1, args.steps + 1):
        length = int(rng.integers(min_len, max_len + 1))
        a, b, same = make_batch(rng, data, args.pairs, length)
        if args.eq_aug > 0:
            a, b = random_eq(rng, a, args.eq_aug), random_eq(rng, b, args.eq_aug)
        z = model(torch.from_numpy(np.concatenate([a, b])))
        za, zb = z[: len(a)], z[len(a):]
        y = torch.from_numpy(same)
        loss = siamese_bce(za, zb, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run_loss += float(loss.detach())
        run_acc += float((((za * zb).sum(-1) > 0).float() == y).float().mean())
        if step % 100 == 0 or step == args.steps:
            n = 100 if step % 100 == 0 else step % 100
            entry = {"step": step, "loss": run_loss / n, "pair_acc": run_acc / n, "minutes": (time.time() - t_train) / 60}
            if step % 500 == 0 or step == args.steps:
                te = embed_torch(te_segs)
                entry["eer_test_other"] = equal_error_rate(*pair_scores(te, te_lab, te_utt))[0]
                if ho_segs:
                    ho = embed_torch(ho_segs)
                    entry["eer_validation"] = equal_error_rate(*pair_scores(ho, ho_lab))[0]
            log.append(entry)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}), flush=True)
            run_loss, run_acc = 0.0, 0.0
        if (time.time() - t_train) / 60 > args.max_minutes:
            print(f"time budget reached at step {step}", flush=True)
            break
    if args.steps == 0:
        step = 0
    train_minutes = (time.time() - t_train) / 60 + prev["minutes"]
    log = prev["log"] + [dict(e, step=e["step"] + prev["steps"]) for e in log]
    step += prev["steps"]
    model.eval()

    args.workdir.mkdir(parents=True, exist_ok=True)
    args.models.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "args": {k: str(v) for k, v in vars(args).items()},
                "cmn": args.cmn, "frontend": fe.frontend_params(), "log": log, "steps": step, "train_minutes": train_minutes}, args.workdir / "encoder.pt")

    from pnsc.training.speaker.export import export_onnx

    onnx_path = args.models / "speaker_encoder.onnx"
    export_onnx(model, onnx_path)
    rt = SpeakerEncoderRuntime(onnx_path)

    # speaker embeddings (mean over 3 s segments of all the speaker's utterances), with the ONNX model
    def speaker_means(act, spks):
        segs, lab, utt = segment_table(act, spks, allow_short=True)
        emb = rt.embed_segments(segs)
        lab_a = np.array(lab)
        means = np.stack([emb[lab_a == s].mean(axis=0) for s in spks])
        return emb, lab, utt, means

    tr_emb, tr_lab, tr_utt, tr_means = speaker_means(active, train_spk)
    va_emb, va_lab, va_utt, va_means = speaker_means(active, val_spk) if val_spk else (
        np.zeros((0, EMBED_DIM)), [], [], np.zeros((0, EMBED_DIM)))
    te_emb, te_lab2, te_utt2, te_means = speaker_means(active_test, test_spk)

    align = json.loads(args.align_to.read_text())["groupings"] if args.align_to else None
    groupings = {}
    for c in range(2, 7):
        cents, labels = kmeans_groups(tr_means, c)
        if align is not None and str(c) in align:
            cents, labels = align_labels(cents, labels, train_spk, align[str(c)]["assignment"])
        va_g = nearest(va_means, cents) if len(va_means) else np.zeros(0, dtype=int)
        assign = {s: int(g) for s, g in zip(train_spk, labels)}
        assign.update({s: int(g) for s, g in zip(val_spk, va_g)})
        groupings[str(c)] = {
            "centroids": np.round(cents, 7).tolist(),
            "assignment": dict(sorted(assign.items(), key=lambda kv: speaker_key(kv[0]))),
            "train_sizes": np.bincount(labels, minlength=c).tolist(),
            "validation_sizes": np.bincount(va_g, minlength=c).tolist(),
        }
        print(f"C={c}: train sizes {groupings[str(c)]['train_sizes']}, validation {groupings[str(c)]['validation_sizes']}")

    info = {
        "format": "pnsc-speaker-groups-1",
        "default_groups": args.default_groups,
        "embedding_dim": EMBED_DIM,
        "encoder": onnx_path.name,
        "encoder_input": "log-magnitude STFT frames of active speech, (batch, time, 257) float32",
        "segment_frames": SEGMENT_FRAMES,
        "min_active_frames": MIN_ACTIVE_FRAMES,
        "speaker_embedding": "mean of the embeddings of 3 s active-speech segments of the speaker's utterances",
        "classification": "nearest centroid (Euclidean)",
        "frontend": fe.frontend_params(),
        "kmeans": {"seed": KMEANS_SEED, "n_init": KMEANS_INITS, "order": (f"groups numbered to match {args.align_to.name} (maximum overlap)" if args.align_to
                                                 else "groups numbered by decreasing train size")},
        "corpus": str(args.corpus),
        "extra_corpus": ({"folder": str(args.extra_corpus), "subsets": args.extra_subsets,
                          "max_utterances": args.extra_max_utterances}
                         if args.extra_corpus is not None else None),
        "splits": split_note,
        "speakers": {s: {"split": "train" if s in set(train_spk) else "validation",
                         "sex": speakers_txt[s].sex if s in speakers_txt else extra_sex.get(s, "?")}
                     for s in sorted(train_spk + val_spk, key=speaker_key)},
        "training": {"steps": step, "minutes": round(train_minutes, 2), "pairs_per_batch": args.pairs,
                     "crop_seconds": [args.min_crop, args.max_crop], "lr": args.lr, "seed": args.seed,
                     "eq_aug": args.eq_aug, "cmn": args.cmn,
                     "log": log[-1] if log else None},
        "notes": args.note,
        "groupings": groupings,
    }
    (args.models / "speaker_groups.json").write_text(json.dumps(info, indent=1) + "\n")
    np.savez_compressed(args.workdir / "embeddings.npz",
                        train_speakers=np.array(train_spk), train_means=tr_means,
                        train_seg_emb=tr_emb, train_seg_spk=np.array(tr_lab), train_seg_utt=np.array(tr_utt),
                        val_speakers=np.array(val_spk), val_means=va_means,
                        val_seg_emb=va_emb, val_seg_spk=np.array(va_lab), val_seg_utt=np.array(va_utt),
                        test_speakers=np.array(test_spk), test_means=te_means,
                        test_seg_emb=te_emb, test_seg_spk=np.array(te_lab2), test_seg_utt=np.array(te_utt2))
    print(f"wrote {onnx_path}, {args.models / 'speaker_groups.json'}; total {(time.time() - t_start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
