"""Reader for LibriSpeech's layout: ``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".flac", ".wav")


class CorpusError(Exception):
    """The corpus folder is missing, empty or malformed."""


@dataclass(frozen=True)
class Utterance:
    subset: str
    speaker: str
    chapter: str
    path: Path

    @property
    def utt_id(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class SpeakerInfo:
    speaker: str
    sex: str  # "F", "M" or "?"
    subset: str
    minutes: float
    name: str


def read_speakers_txt(path: Path) -> dict[str, SpeakerInfo]:
    """Parse LibriSpeech's SPEAKERS.TXT (``;`` comments, ``|``-separated fields)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"speaker table not found: {path}")
    table: dict[str, SpeakerInfo] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|", 4)]
        if len(fields) < 4:
            raise CorpusError(f"{path}:{lineno}: expected 'ID|SEX|SUBSET|MINUTES|NAME', got {line!r}")
        try:
            minutes = float(fields[3])
        except ValueError as exc:
            raise CorpusError(f"{path}:{lineno}: bad minutes field {fields[3]!r}") from exc
        name = fields[4] if len(fields) > 4 else ""
        table[fields[0]] = SpeakerInfo(fields[0], fields[1].upper() or "?", fields[2], minutes, name)
    return table


def scan_corpus(root: Path, subsets: list[str] | None = None) -> list[Utterance]:
    """List every utterance under ``root`` (optionally only some subsets), sorted for determinism."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"corpus folder not found: {root}")
    subset_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subsets is not None:
        missing = set(subsets) - {p.name for p in subset_dirs}
        if missing:
            raise CorpusError(f"subset(s) {sorted(missing)} not found under {root}")
        subset_dirs = [p for p in subset_dirs if p.name in subsets]
    utterances: list[Utterance] = []
    for subset_dir in subset_dirs:
        for path in sorted(subset_dir.glob("*/*/*")):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                speaker, chapter = path.parent.parent.name, path.parent.name
                utterances.append(Utterance(subset_dir.name, speaker, chapter, path))
    if not utterances:
        raise CorpusError(f"no audio files in LibriSpeech layout under {root}")
    return utterances


def by_speaker(utterances: list[Utterance]) -> dict[str, list[Utterance]]:
    """Group utterances by speaker id, keeping the sorted order."""
    groups: dict[str, list[Utterance]] = {}
    for utt in utterances:
        groups.setdefault(utt.speaker, []).append(utt)
    return groups
