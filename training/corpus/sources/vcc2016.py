"""Real studio speech from the Voice Conversion Challenge 2016 corpus (8 US English speakers, 4 F / 4 M).

Toda et al., "The Voice Conversion Challenge 2016", Interspeech 2016; recordings released by the University
of Edinburgh under the Open Data Commons Attribution licence (ODC-By 1.0). The copy beside the checkout
(``../shared/data/vcc2016``, 16 kHz FLAC, ``<speaker>/<speaker>-<utt>.flac`` plus ``SPEAKERS.txt``) is linked
into the generated corpus tree in LibriSpeech layout (``studio-vcc2016/<speaker>/vcc2016/...``); nothing is
re-encoded. Every speaker is a real, distinct person, so all of them train (``splits.py``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SUBSET = "studio-vcc2016"
CHAPTER = "vcc2016"
ATTRIBUTION = ("VCC 2016 (Toda et al., Interspeech 2016), University of Edinburgh, ODC-By 1.0")


class VccError(Exception):
    pass


@dataclass
class VccSpeaker:
    speaker: str
    sex: str
    files: int


def read_speakers(root: Path) -> dict[str, str]:
    """``SPEAKERS.txt`` (tab-separated: speaker, sex, files, minutes) -> {speaker: sex}."""
    path = Path(root) / "SPEAKERS.txt"
    if not path.is_file():
        raise VccError(f"VCC 2016 speaker table not found: {path}")
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2:
            out[fields[0]] = fields[1].upper()
    if not out:
        raise VccError(f"{path}: no speakers listed")
    return out


def link_corpus(root: Path, corpus: Path) -> list[VccSpeaker]:
    """Link every VCC utterance into ``<corpus>/studio-vcc2016`` (idempotent); return the speakers."""
    root, corpus = Path(root), Path(corpus)
    sexes = read_speakers(root)
    result = []
    for speaker, sex in sorted(sexes.items()):
        files = sorted((root / speaker).glob(f"{speaker}-*.flac"))
        if not files:
            raise VccError(f"no FLAC files for speaker {speaker} under {root / speaker}")
        out_dir = corpus / SUBSET / speaker / CHAPTER
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            utt = f.stem.split("-", 1)[1]
            dst = out_dir / f"{speaker}-{CHAPTER}-{utt}.flac"
            if not dst.exists():
                os.symlink(f.resolve(), dst)
        result.append(VccSpeaker(speaker, sex, len(files)))
    return result


def speaker_sex(corpus: Path) -> dict[str, str]:
    """Sex of the VCC speakers linked into ``corpus``: the speaker code carries it (S/T then F/M: SF1, TM2)."""
    linked = Path(corpus) / SUBSET
    return {p.name: p.name[1].upper() for p in linked.iterdir()} if linked.is_dir() else {}
