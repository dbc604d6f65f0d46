"""The whole evaluation: references -> every system -> scores -> statistics (``scores.json``).

``run_eval(cfg)`` returns the results dictionary that :mod:`.report` renders.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import EvalError
from .metrics import ALL_METRICS, Scorer
from .peers import PEERS
from .refs import Utterance
from .stats import mean_ci, paired_difference
from .systems import BASELINE_OF, FAMILIES, PnscSystem, decoder_params, decoder_training, encode, make_backend

DEFAULT_SYSTEMS = FAMILIES + tuple(PEERS)
WRONG_GROUP_METRICS = ("pesq_wb", "estoi", "visqol", "spk_sim")


@dataclass
class EvalConfig:
    systems: tuple[str, ...] = DEFAULT_SYSTEMS
    metrics: tuple[str, ...] = ALL_METRICS
    backend: str = "auto"
    precision: str | None = None
    postfilter: tuple[float, float, float] | None = None  # formant postfilter (g_n, g_d, mu) on pnsc decoders
    quiet_floor: tuple[float, float, float] | None = None  # quiet-frame sampling floor (floor, quiet_c0, loud_c0)
    jobs: int = 1
    wrong_group: bool = True
    seed: int = 0
    models_dir: str | None = None
    loss_rates: tuple[float, ...] = ()
    loss_bursts: tuple[float, ...] = (1.0, 3.0)
    loss_utterances: int = 5
    notes: list[str] = field(default_factory=list)


def _progress(iterable, desc: str, total: int | None = None):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=True, dynamic_ncols=True)


def _spawn():
    """Fresh worker processes (forking a process that runs onnxruntime / TFLite threads is unsafe)."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


# -- decoding in worker processes ----------------------------------------------------------
_BACKEND = None


def _init_worker(backend: str, models_dir: str | None, precision: str | None,
                 postfilter: tuple[float, float, float] | None = None,
                 quiet_floor: tuple[float, float, float] | None = None) -> None:
    global _BACKEND
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _BACKEND = make_backend(backend, models_dir, precision, postfilter, quiet_floor)


def _decode_task(task: tuple) -> tuple:
    key, family, group, features, seed = task
    t0 = time.perf_counter()
    pcm = _BACKEND.decode(family, group, features, seed=seed)
    return key, pcm.astype(np.float32) / 32768.0, time.perf_counter() - t0


def _run_decodes(tasks: list[tuple], cfg: EvalConfig) -> tuple[dict, dict, str]:
    """-> ({key: audio}, {family: [seconds of work, seconds of audio]}, backend name)."""
    out: dict = {}
    timing: dict[str, list[float]] = {}
    probe = make_backend(cfg.backend, cfg.models_dir, cfg.precision, cfg.postfilter, cfg.quiet_floor)
    name = probe.name

    def collect(res, task):
        key, audio, dt = res
        out[key] = audio
        fam = task[1]
        t = timing.setdefault(fam, [0.0, 0.0])
        t[0] += dt
        t[1] += len(task[3]) * 0.01

    if cfg.jobs <= 1:
        global _BACKEND
        _BACKEND = probe
        for task in _progress(tasks, f"decode ({name})"):
            collect(_decode_task(task), task)
    else:
        by_key = {t[0]: t for t in tasks}
        with ProcessPoolExecutor(cfg.jobs, mp_context=_spawn(), initializer=_init_worker, initargs=(cfg.backend, cfg.models_dir, cfg.precision, cfg.postfilter,
                                                                  cfg.quiet_floor)) as ex:
            for res in _progress(ex.map(_decode_task, tasks, chunksize=1), f"decode ({name}, {cfg.jobs} jobs)",
                                 total=len(tasks)):
                collect(res, by_key[res[0]])
    if getattr(probe, "kernel", ""):
        name = f"{name} ({probe.kernel})"
    return out, timing, name


# -- scoring in worker processes -------------------------------------------------------------
_SCORERS: dict = {}


def _score_task(task: tuple) -> tuple:
    s, uid, ref, deg, emb, metrics = task
    if metrics not in _SCORERS:
        _SCORERS[metrics] = Scorer(metrics)
    try:
        return s, uid, _SCORERS[metrics].score(ref, deg, emb)
    except EvalError as exc:
        return s, uid, str(exc)


def _run_scoring(todo: list[tuple], jobs: int, scorers: dict):
    """Yield (system, utterance, scores or error message), in this process or in ``jobs`` workers."""
    if jobs <= 1:
        _SCORERS.update(scorers)
        for task in _progress(todo, "score"):
            yield _score_task(task)
        return
    with ProcessPoolExecutor(jobs, mp_context=_spawn()) as ex:
        yield from _progress(ex.map(_score_task, todo, chunksize=2), f"score ({jobs} jobs)", total=len(todo))


# -- classification -------------------------------------------------------------------------
def classify(utts: list[Utterance]) -> dict:
    """Utterance groups (the sender's decision) and each speaker's group (mean embedding of all
    its utterances, nearest centroid); accuracy = utterances landing in their speaker's group."""
    from pnsc.sender.speaker_classifier import SpeakerClassificationError, SpeakerClassifier

    clf = SpeakerClassifier()
    groups: dict[str, int | None] = {}
    emb: dict[str, list[np.ndarray]] = {}
    for u in _progress(utts, "classify"):
        try:
            groups[u.id] = clf.classify(u.audio).group
            emb.setdefault(u.speaker, []).append(clf.embed_pcm(u.audio))
        except SpeakerClassificationError:
            groups[u.id] = None
    spk_group = {s: clf.classify_embedding(np.mean(v, axis=0)).group for s, v in emb.items()}
    per_utt = [(groups[u.id], spk_group.get(u.speaker)) for u in utts if groups[u.id] is not None]
    correct = sum(1 for g, s in per_utt if g == s)
    return {"utterance_group": groups, "speaker_group": spk_group, "num_groups": clf.num_groups,
            "accuracy": correct / len(per_utt) if per_utt else None, "classified": len(per_utt),
            "unclassified": [u.id for u in utts if groups[u.id] is None]}


# -- the evaluation -------------------------------------------------------------------------
def run_eval(utts: list[Utterance], cfg: EvalConfig) -> tuple[dict, dict]:
    """-> (results for scores.json, decoded audio {system: {utt: float32}})."""
    t_start = time.time()
    unknown = [s for s in cfg.systems if s not in DEFAULT_SYSTEMS]
    if unknown:
        raise EvalError(f"unknown system(s) {unknown}; known: {list(DEFAULT_SYSTEMS)}")
    if not utts:
        raise EvalError("no reference utterances")
    scorer = Scorer(cfg.metrics)
    scorer.check_tools()
    peers = [PEERS[s] for s in cfg.systems if s in PEERS]
    for p in peers:
        p.check()
    pnsc_systems = [PnscSystem(s) for s in cfg.systems if s in FAMILIES]
    cls = classify(utts) if any(s.personalized for s in pnsc_systems) else None

    # pnsc: encode once, decode with every needed (family, group)
    features = {u.id: encode(u.audio)[1] for u in _progress(utts, "encode (1.6 kb/s)")}
    tasks: list[tuple] = []
    want: dict[tuple, tuple] = {}
    n_groups = cls["num_groups"] if cls else 0
    for u in utts:
        for s in pnsc_systems:
            g = cls["utterance_group"][u.id] if cls else None
            fam, grp = s.decoder_for(g)
            want[(s.name, u.id)] = (fam, grp)
            if s.personalized and cfg.wrong_group and g is not None:
                for gg in range(n_groups):
                    want[(f"{s.name}@g{gg}", u.id)] = (s.family, gg)
    for (sysname, uid), (fam, grp) in want.items():
        key = (fam, grp, uid)
        if not any(t[0] == key for t in tasks):
            tasks.append((key, fam, grp, features[uid], cfg.seed))
    decoded_by_key, timing, backend_name = _run_decodes(tasks, cfg) if tasks else ({}, {}, "none")
    audio: dict[str, dict[str, np.ndarray]] = {}
    for (sysname, uid), (fam, grp) in want.items():
        audio.setdefault(sysname, {})[uid] = decoded_by_key[(fam, grp, uid)]

    bitrate = {s.name: s.bitrate for s in pnsc_systems}
    peer_rates: dict[str, list[float]] = {}
    for p in peers:
        for u in _progress(utts, f"{p.name}"):
            y, bps = p.run(u.audio)
            audio.setdefault(p.name, {})[u.id] = y
            peer_rates.setdefault(p.name, []).append(bps)
    for name, v in peer_rates.items():
        bitrate[name] = float(np.mean(v))

    # scores
    main_systems = [s for s in cfg.systems if s in audio]
    ref_scores: dict[str, dict] = {}
    embeddings: dict[str, np.ndarray | None] = {}
    per: dict[str, dict[str, dict]] = {s: {} for s in audio}
    failures: list[str] = []
    wrong_scorer = Scorer(tuple(m for m in WRONG_GROUP_METRICS if m in cfg.metrics))
    wrong_scorer._visqol, wrong_scorer._voice_encoder = scorer._visqol, scorer._voice_encoder
    # main systems first, so a wrong-group decode that is the main system's own decode reuses its scores
    jobs = [(s, u) for s in sorted(audio, key=lambda k: "@g" in k) for u in utts if u.id in audio[s]]
    for u in _progress(utts, "score references"):
        ref_scores[u.id] = scorer.dnsmos(u.audio)
        embeddings[u.id] = scorer.embedding(u.audio) if "spk_sim" in cfg.metrics else None
    todo = []
    for s, u in jobs:
        main = s.split("@")[0]
        if "@g" in s and audio[s][u.id] is audio.get(main, {}).get(u.id):
            continue  # the main system's own decode: its scores are copied below
        metrics_for = wrong_scorer.metrics if "@g" in s else scorer.metrics
        todo.append((s, u.id, u.audio, audio[s][u.id], embeddings.get(u.id), metrics_for))
    for s, uid, res_or_err in _run_scoring(todo, cfg.jobs, {scorer.metrics: scorer, wrong_scorer.metrics: wrong_scorer}):
        if isinstance(res_or_err, str):
            failures.append(f"{s} / {uid}: {res_or_err}")
            per[s][uid] = {}
        else:
            per[s][uid] = res_or_err
    for s, u in jobs:
        main = s.split("@")[0]
        if "@g" in s and u.id not in per[s]:
            per[s][u.id] = {m: v for m, v in per[main].get(u.id, {}).items() if m in wrong_scorer.metrics or m == "lag"}

    metrics = [m for m in cfg.metrics]
    summary = {s: {m: mean_ci([per[s][u.id].get(m, np.nan) for u in utts if u.id in per[s]]) for m in metrics}
               for s in main_systems}
    summary["reference"] = {m: mean_ci([ref_scores[u.id].get(m, np.nan) for u in utts])
                            for m in metrics if m.startswith("dnsmos")}
    # Paired over the utterances the classifier assigned a group (others fall back to the baseline,
    # which would add exact zeros).
    grouped = {u.id for u in utts if cls is None or cls["utterance_group"].get(u.id) is not None}
    paired = {}
    for s, b in BASELINE_OF.items():
        if s in per and b in per:
            ids = [u.id for u in utts if u.id in per[s] and u.id in per[b] and u.id in grouped]
            paired[f"{s} - {b}"] = {m: paired_difference([per[s][i].get(m, np.nan) for i in ids],
                                                         [per[b][i].get(m, np.nan) for i in ids]) for m in metrics}
    if "plpcnet-s" in per and "lpcnet-bl-l" in per:
        ids = [u.id for u in utts if u.id in per["plpcnet-s"] and u.id in per["lpcnet-bl-l"] and u.id in grouped]
        paired["plpcnet-s - lpcnet-bl-l"] = {m: paired_difference(
            [per["plpcnet-s"][i].get(m, np.nan) for i in ids], [per["lpcnet-bl-l"][i].get(m, np.nan) for i in ids])
            for m in metrics}
    if cls and cls["unclassified"] and pnsc_systems:
        cfg.notes.append(f"{len(cls['unclassified'])} utterance(s) had too little speech for the classifier; "
                         "their PLPCNet rows use the same-size baseline (as pnsc decode does) and they are left "
                         "out of the paired differences: " + ", ".join(cls["unclassified"]))
    wrong = wrong_group_analysis(utts, per, cls, pnsc_systems) if cfg.wrong_group and cls else {}

    params = decoder_params(cfg.models_dir)
    speed = {fam: {"rtf": t[0] / t[1] if t[1] else None, "work_s": t[0], "audio_s": t[1]}
             for fam, t in timing.items()}
    systems_info = {}
    for s in main_systems:
        info = {"bitrate": bitrate.get(s), "kind": "pnsc" if s in FAMILIES else PEERS[s].kind}
        if s in FAMILIES:
            info["params"] = params.get(s)
            fams = {want[(s, u.id)][0] for u in utts if (s, u.id) in want}
            rt = [speed[f]["rtf"] for f in fams if f in speed and speed[f]["rtf"] is not None]
            info["rtf_in_run"] = float(np.mean(rt)) if rt else None
            info["rtf"] = info["rtf_in_run"]
        systems_info[s] = info
    bench = decoder_bench([s.family for s in pnsc_systems], cfg) if pnsc_systems else None
    for row in bench or []:
        info = systems_info.get(row["family"])
        if info is not None:
            info["rtf"], info["cpu_rtf"], info["p99_ms"] = row["rtf"], row["cpu_rtf"], row["p99_ms"]

    results = {
        "utterances": [{"id": u.id, "speaker": u.speaker, "source": u.source, "seconds": round(u.seconds, 3)}
                       for u in utts],
        "systems": systems_info,
        "metrics": metrics,
        "summary": summary,
        "paired": paired,
        "wrong_group": wrong,
        "classification": cls,
        "per_utterance": per,
        "reference_scores": ref_scores,
        "decoder_backend": backend_name,
        "decoders": decoder_training(cfg.models_dir) if pnsc_systems else [],
        "decode_speed": speed,
        "decoder_bench": bench,
        "visqol_mapping": scorer.visqol_mapping,
        "failures": failures,
        "config": {k: v for k, v in asdict(cfg).items() if k != "notes"},
        "notes": cfg.notes,
        "elapsed_s": None,
    }
    results["elapsed_s"] = time.time() - t_start
    return results, audio


def decoder_bench(families: list[str], cfg: EvalConfig, seconds: float = 10.0) -> list[dict] | None:
    """``pnsc bench decoder`` on each family (runtime only; one thread, bundled speech): real-time factor
    by the wall clock and by the thread's CPU time (the latter holds on a shared machine)."""
    from .systems import runtime_available

    if cfg.backend == "reference" or not runtime_available()[0]:
        return None
    from pnsc.receiver.runtime import DEFAULT_PRECISION
    from pnsc.receiver.runtime.bench import run_benchmark

    rows = []
    for fam in _progress(families, "bench decoder"):  # the precision the scores were decoded with
        rows += run_benchmark(seconds, families=(fam,), precisions=(cfg.precision or DEFAULT_PRECISION,))
    return rows


def wrong_group_analysis(utts: list[Utterance], per: dict, cls: dict, systems: list[PnscSystem]) -> dict:
    """For each personalized family: every group's decoder on every utterance; is the classified one best?"""
    out = {}
    n = cls["num_groups"]
    for s in systems:
        if not s.personalized:
            continue
        fam = {}
        for m in WRONG_GROUP_METRICS:
            rows, best, ranks, diffs = {}, 0, [], []
            for u in utts:
                g = cls["utterance_group"].get(u.id)
                if g is None:
                    continue
                vals = [per.get(f"{s.name}@g{gg}", {}).get(u.id, {}).get(m, np.nan) for gg in range(n)]
                if not np.all(np.isfinite(vals)):
                    continue
                rows[u.id] = vals
                order = np.argsort(vals)[::-1]
                rank = int(np.where(order == g)[0][0]) + 1
                ranks.append(rank)
                best += rank == 1
                diffs.append(vals[g] - np.mean([v for i, v in enumerate(vals) if i != g]))
            if not rows:
                continue
            by_speaker: dict[str, list] = {}
            for u in utts:
                if u.id in rows:
                    by_speaker.setdefault(u.speaker, []).append(rows[u.id])
            fam[m] = {"classified_best": best, "n": len(rows), "mean_rank": float(np.mean(ranks)),
                      "classified_minus_others": mean_ci(diffs),
                      "per_group_mean": [mean_ci([r[gg] for r in rows.values()]) for gg in range(n)],
                      "speaker_by_group": {spk: np.mean(v, axis=0).tolist() for spk, v in by_speaker.items()}}
        out[s.name] = fam
    return out
