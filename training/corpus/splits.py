"""Seeded, explicit speaker splits (train / validation / test), saved as JSON; never mixed.

Rules (``make_splits``):
- LibriSpeech ``train-*`` speakers are train, except ``n_val`` (default 20) drawn from
  ``train-clean-100`` (or from all ``train-*`` speakers when that subset is absent), stratified by sex;
  with the paper's 251 train-clean-100 speakers this gives its 231 train / 20 validation.
- LibriSpeech ``dev-*`` and ``test-*`` speakers are test (the paper tests on dev-clean).
- Real non-LibriSpeech speakers (Asterisk, VCC 2016, KDE klettres/ktuberling) are train: every real minute
  is used for training.
- Synthetic sources: one pseudo-speaker per source goes to validation when the source has at least
  ``synth_val_min`` speakers, the rest is train.
``check_splits`` raises ``SplitError`` when a speaker is in two splits.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

SPLITS = ("train", "validation", "test")


class SplitError(Exception):
    pass


def _stratified_sample(speakers: list[dict], n: int, rng: random.Random) -> list[str]:
    by_sex: dict[str, list[str]] = {}
    for s in sorted(speakers, key=lambda s: s["speaker"]):
        by_sex.setdefault(s.get("sex", "?") or "?", []).append(s["speaker"])
    total = len(speakers)
    if n > total:
        raise SplitError(f"cannot draw {n} validation speakers from {total}")
    quota = {sex: int(round(n * len(ids) / total)) for sex, ids in by_sex.items()}
    while sum(quota.values()) > n:  # rounding fix-ups, deterministic
        quota[max(sorted(quota), key=lambda k: quota[k])] -= 1
    while sum(quota.values()) < n:
        quota[max(sorted(quota), key=lambda k: len(by_sex[k]) - quota[k])] += 1
    out: list[str] = []
    for sex in sorted(by_sex):
        out += rng.sample(by_sex[sex], quota[sex])
    return sorted(out)


def make_splits(speakers: list[dict], seed: int = 0, n_val: int = 20, synth_val_min: int = 5) -> dict:
    """``speakers``: dicts with ``speaker``, ``source``, ``subset``, ``sex``, ``real``. Returns the split dict."""
    rng = random.Random(seed)
    seen: dict[str, str] = {}
    for s in speakers:
        if s["speaker"] in seen and seen[s["speaker"]] != s["subset"]:
            raise SplitError(f"speaker {s['speaker']} appears in subsets {seen[s['speaker']]} and {s['subset']}")
        seen[s["speaker"]] = s["subset"]
    assign: dict[str, str] = {}
    libri = [s for s in speakers if s["source"] == "librispeech"]
    libri_train = [s for s in libri if s["subset"].startswith("train-")]
    for s in libri:
        if s["subset"].startswith(("dev-", "test-")):
            assign[s["speaker"]] = "test"
        elif s["subset"].startswith("train-"):
            assign[s["speaker"]] = "train"
        else:
            raise SplitError(f"LibriSpeech speaker {s['speaker']}: unknown subset {s['subset']!r}")
    pool = [s for s in libri_train if s["subset"] == "train-clean-100"] or libri_train
    if pool and n_val > 0:
        for spk in _stratified_sample(pool, min(n_val, len(pool) - 1), rng):
            assign[spk] = "validation"
    others = sorted({s["source"] for s in speakers} - {"librispeech"})
    for source in others:
        group = sorted(s["speaker"] for s in speakers if s["source"] == source)
        for spk in group:
            assign[spk] = "train"
        synthetic = not any(s["real"] for s in speakers if s["source"] == source)
        if synthetic and len(group) >= synth_val_min:
            assign[rng.choice(group)] = "validation"
    splits = {name: sorted(spk for spk, sp in assign.items() if sp == name) for name in SPLITS}
    out = {"seed": seed, "n_val": n_val, "rules": __doc__.split("Rules (``make_splits``):")[1].split("``check_splits``")[0].strip(),
           **splits,
           "source": {s["speaker"]: s["source"] for s in sorted(speakers, key=lambda s: s["speaker"])}}
    check_splits(out)
    return out


def check_splits(splits: dict) -> None:
    """Raise ``SplitError`` if any speaker is in more than one split (or a split list is missing)."""
    owner: dict[str, str] = {}
    for name in SPLITS:
        if name not in splits:
            raise SplitError(f"split {name!r} missing")
        for spk in splits[name]:
            if spk in owner:
                raise SplitError(f"speaker {spk} is in both {owner[spk]} and {name}")
            owner[spk] = name


def split_of(splits: dict) -> dict[str, str]:
    check_splits(splits)
    return {spk: name for name in SPLITS for spk in splits[name]}


def save_splits(splits: dict, path: Path) -> None:
    check_splits(splits)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(splits, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_splits(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"splits file not found: {path}")
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SplitError(f"{path}: not valid JSON: {exc}") from exc
    check_splits(splits)
    return splits
