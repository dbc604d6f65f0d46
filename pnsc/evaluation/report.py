"""One HTML report (``index.html``) plus its media folder (``media/``: charts, figures, audio) and
``scores.json`` with every number."""
from __future__ import annotations

import html
import json
import shutil
import time
from pathlib import Path

import numpy as np

from pnsc.shared.paths import PACKAGE_ROOT

from .metrics import CEILING, LABELS
from .reading import pretty, reading

FIGURES = {"fig3_speaker_groups.png": ("docs/figures/speaker/tsne_groups.png",
                                       "Fig. 3: speaker embeddings (t-SNE) coloured by group"),
           "fig5_val_loss.png": ("docs/figures/fig5_val_loss.png",
                                 "Fig. 5: validation loss, eq. (3), personalized vs baseline decoders")}
COLORS = {"pnsc": "tab:blue", "codec2": "tab:gray", "opus": "tab:orange"}
LEGACY = ("audio", "quality.png")  # outputs of the earlier scripts/eval_quality.py report


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def bar_charts(res: dict, path: Path) -> None:
    plt = _plt()
    metrics = res["metrics"]
    systems = [s for s in res["systems"]]
    cols = 4
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        names = list(systems) + (["reference"] if m.startswith("dnsmos") else [])
        stats = [res["summary"].get(s, {}).get(m, {}) for s in names]
        means = [st.get("mean") or 0.0 for st in stats]
        cis = [st.get("ci95") or 0.0 for st in stats]
        colors = [COLORS.get(res["systems"].get(s, {}).get("kind"), "tab:green") for s in names]
        ax.bar(range(len(names)), means, yerr=cis, capsize=3, color=colors)
        ax.set_xticks(range(len(names)), [pretty(s) for s in names], rotation=50, ha="right", fontsize=7)
        ax.set_title(LABELS[m], fontsize=10)
        if m in CEILING:
            ax.axhline(CEILING[m], color="k", lw=0.6, ls=":")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle("mean ± 95% CI (blue: pnsc 1.6 kb/s; grey: Codec 2; orange: Opus; green: unprocessed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def wrong_group_chart(res: dict, path: Path, metric: str) -> bool:
    wrong = res.get("wrong_group") or {}
    fams = [f for f in wrong if metric in wrong[f]]
    if not fams:
        return False
    plt = _plt()
    cls = res["classification"]
    fig, axes = plt.subplots(1, len(fams), figsize=(5 * len(fams), 3.2), squeeze=False)
    for ax, fam in zip(axes.flat, fams):
        sbg = wrong[fam][metric]["speaker_by_group"]
        spk = sorted(sbg)
        mat = np.array([sbg[s] for s in spk])
        im = ax.imshow(mat, aspect="auto", cmap="viridis")
        for i, s in enumerate(spk):
            g = cls["speaker_group"].get(s)
            if g is not None:
                ax.add_patch(plt.Rectangle((g - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
            for j in range(mat.shape[1]):
                light = (mat[i, j] - mat.min()) > 0.6 * (np.ptp(mat) or 1.0)
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="k" if light else "w")
        ax.set_yticks(range(len(spk)), spk, fontsize=8)
        ax.set_xticks(range(mat.shape[1]), [f"g{j}" for j in range(mat.shape[1])])
        ax.set_xlabel("decoder group")
        ax.set_title(f"{pretty(fam)}: {LABELS[metric]} (red: speaker's group)", fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def loss_chart(loss: dict, path: Path) -> bool:
    curves = loss.get("curves") or {}
    if not curves:
        return False
    plt = _plt()
    metrics = loss.get("metrics", [])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.6), squeeze=False)
    blues, oranges = plt.get_cmap("Blues"), plt.get_cmap("Oranges")
    labels = list(curves)
    n_p = sum(1 for lab in labels if not lab.startswith("opus"))
    n_o = len(labels) - n_p
    for ax, m in zip(axes.flat, metrics):
        ip = io = 0
        for label in labels:
            c = curves[label]
            if label.startswith("opus"):
                color = oranges(0.45 + 0.5 * io / max(1, n_o - 1))
                io += 1
            else:
                color = blues(0.45 + 0.5 * ip / max(1, n_p - 1))
                ip += 1
            pts = [(r, st[m]["mean"], st[m]["ci95"] or 0) for r, st in zip(c["rates"], c["stats"])
                   if st.get(m, {}).get("mean") is not None]
            if pts:
                r, y, e = map(np.array, zip(*pts))
                ax.plot(100 * r, y, marker="o", ms=3, color=color, label=label, ls="--" if "bursty" in label else "-")
                ax.fill_between(100 * r, y - e, y + e, color=color, alpha=0.12)
        ax.set_xlabel("packet loss (%)")
        ax.set_title(f"{LABELS[m]} (mean, band = 95% CI)", fontsize=10)
        ax.grid(alpha=0.3)
    handles, labs = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labs, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(labs) + 1) // 2), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _cell(st: dict | None, digits: int = 2) -> str:
    if not st or st.get("mean") is None:
        return "–"
    ci = st.get("ci95")
    return f"{st['mean']:.{digits}f}" + (f" <small>± {ci:.{digits}f}</small>" if ci is not None else "")


def headline_rows(res: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows (plain text) of the headline table; also used for the closing summary."""
    metrics = res["metrics"]
    bench = bool(res.get("decoder_bench"))
    head = ["system", "bitrate (b/s)", "params", "decoder RTF (CPU)" if bench else "decoder RTF"]
    head += [LABELS[m] for m in metrics]
    rows = []
    for s, info in res["systems"].items():
        rtf = info.get("cpu_rtf") if bench else info.get("rtf")
        row = [pretty(s), f"{info['bitrate']:.0f}" if info.get("bitrate") else "–",
               f"{info['params'] / 1e6:.3f}M" if info.get("params") else "–",
               f"{rtf:.3f}" if rtf else "–"]
        row += [_cell(res["summary"][s].get(m)) for m in metrics]
        rows.append(row)
    ref = res["summary"].get("reference", {})
    if ref:
        rows.append(["unprocessed reference", "256000", "–", "–"] + [_cell(ref.get(m)) if m in ref else "–"
                                                                    for m in metrics])
    return head, rows


def _table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def decoder_rows(decoders: list[dict]) -> list[list[str]]:
    """The report's decoder table: what each shipped decoder file was trained on (from the manifest, at eval time)."""
    def num(v, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, (int, float)) else "–"

    rows = []
    for d in decoders:
        group = d.get("group")
        slot = (f"the {d['serves_as']} decoder" if d.get("variant") == "baseline-fallback" and d.get("serves_as")
                else "generic" if group in (None, "generic") else f"fine-tuned on group {group}")
        rows.append([f"<code>{html.escape(str(d.get('name')))}</code>", html.escape(slot),
                     html.escape(d.get("released") or "–"), num(d.get("audio_hours_seen"), ",.0f"), num(d.get("gpu_minutes_own"), ".1f"),
                     num(d.get("step"), ","), html.escape(d.get("latest") or ""),
                     f"<code>{html.escape(d.get('sha256') or '–')}</code>"])
    return rows


def write_audio(path: Path, x: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(np.asarray(x, np.float32), -1, 1), 16000, format="FLAC", subtype="PCM_16")


def player_utterances(res: dict, count: int) -> list[str]:
    """First utterance of each speaker, then more in order, up to ``count``."""
    seen, first, rest = set(), [], []
    for u in res["utterances"]:
        (rest if u["speaker"] in seen else first).append(u["id"])
        seen.add(u["speaker"])
    return (first + rest)[:count]


def write_report(res: dict, audio: dict, refs: dict, out: Path, players: int = 6) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    media = out / "media"
    if media.exists():
        shutil.rmtree(media)
    media.mkdir()
    for legacy in LEGACY:
        p = out / legacy
        if p.is_dir() and all(f.suffix == ".flac" for f in p.iterdir()):
            shutil.rmtree(p)
        elif p.is_file():
            p.unlink()
    res = dict(res)
    res["reading"] = reading(res)
    (out / "scores.json").write_text(json.dumps(res, indent=1, default=_json_default))

    bar_charts(res, media / "quality.png")
    parts = [f"<h1>pnsc: objective quality at 1.6 kb/s against peer codecs</h1>",
             f"<p class=meta>{len(res['utterances'])} reference utterances · decoder backend "
             f"<b>{html.escape(res['decoder_backend'])}</b> · ViSQOL mapping {html.escape(str(res['visqol_mapping']))}"
             f" · generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {res['elapsed_s'] / 60:.1f} min "
             f"by <code>pnsc eval</code></p>",
             "<h2>Reading</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in res["reading"]) + "</ul>"]
    head, rows = headline_rows(res)
    parts += ["<h2>Scores (mean ± 95% CI)</h2>", _table(head, rows),
              "<p>Intrusive metrics (PESQ-WB, STOI, ESTOI, ViSQOL) after delay compensation by cross-correlation;"
              " DNSMOS P.835 is non-intrusive; speaker similarity = cosine of resemblyzer embeddings of the "
              "decoded and the original utterance. Peer bitrates are measured payload rates (Opus is VBR). "
              + ("pnsc decoder RTF: <code>pnsc bench decoder</code> (10 s of coded speech, one thread, the "
                 "thread's CPU time over audio time, so it holds on a busy machine)."
                 if res.get("decoder_bench") else
                 "pnsc decoder RTF: decoding time over audio time in this run (reference decoder).") + "</p>",
              "<img src='media/quality.png' alt='bar charts'>"]
    if res.get("decoders"):
        parts += ["<h2>Decoders</h2><p>The decoder files this report decoded with, as <code>models/manifest.json"
                  "</code> described them when it ran: the training round whose release they are from, audio-hours "
                  "seen in training (a fine-tune's include its baseline's), GPU-minutes of its own training, "
                  "optimizer steps, and the newest round's verdict.</p>",
                  _table(["decoder", "slot", "released", "audio-hours seen", "GPU-minutes (own)", "steps", "latest round",
                          "sha256 (sample net)"], decoder_rows(res["decoders"]))]
    if res.get("paired"):
        metrics = res["metrics"]
        prow = []
        for pair, by in res["paired"].items():
            a, b = pair.split(" - ")
            prow.append([f"{pretty(a)} − {pretty(b)}"] + [
                (f"{by[m]['mean']:+.3f} <small>± {by[m]['ci95'] or 0:.3f}</small> "
                 f"({by[m]['wins']}/{by[m]['n']})" + (" *" if by[m]["significant"] else ""))
                if by[m].get("mean") is not None else "–" for m in metrics])
        parts += ["<h2>Personalization: paired differences</h2>",
                  _table(["pair"] + [LABELS[m] for m in metrics], prow),
                  "<p>Mean difference over the same utterances ± 95% CI (utterances where the first is higher / "
                  "all); * = the interval excludes zero.</p>"]
    cls = res.get("classification")
    if res.get("wrong_group"):
        wrows = []
        for fam, by in res["wrong_group"].items():
            for m, w in by.items():
                d = w["classified_minus_others"]
                wrows.append([pretty(fam), LABELS[m], f"{w['classified_best']} / {w['n']}", f"{w['mean_rank']:.2f}",
                              f"{d['mean']:+.3f} <small>± {d['ci95'] or 0:.3f}</small>"]
                             + [_cell(g, 3) for g in w["per_group_mean"]])
        ng = cls["num_groups"] if cls else 4
        parts += ["<h2>Wrong-group decoding</h2>",
                  "<p>Every utterance decoded with every group's personalized decoder.</p>",
                  _table(["decoder", "metric", "classified group best", "mean rank", "classified − others"]
                         + [f"group {g} decoder" for g in range(ng)], wrows)]
        m0 = next((m for m in ("pesq_wb", "visqol", "estoi", "spk_sim") if m in res["metrics"]), None)
        if m0 and wrong_group_chart(res, media / "wrong_group.png", m0):
            parts.append("<img src='media/wrong_group.png' alt='wrong group heat map'>")
    if cls:
        srows = [[html.escape(s), str(g)] for s, g in sorted(cls["speaker_group"].items())]
        acc = f"{cls['accuracy'] * 100:.1f}%" if cls.get("accuracy") is not None else "n/a"
        parts += ["<h2>Speaker classifier on the test speakers</h2>",
                  f"<p>Utterance-level accuracy {acc} over {cls['classified']} utterances "
                  f"(unclassified: {len(cls['unclassified'])}).</p>", _table(["speaker", "group"], srows)]
    loss = res.get("loss") or {}
    parts.append("<h2>Packet loss</h2>")
    if loss_chart(loss, media / "loss.png"):
        parts.append("<img src='media/loss.png' alt='quality versus packet loss'>")
    for line in loss.get("summary_lines", []):
        parts.append(f"<p>{html.escape(line)}</p>")
    if loss.get("missing"):
        parts.append(f"<p><b>pnsc through the receiver path: not measured.</b> {html.escape(loss['missing'])}</p>")
    if not loss:
        parts.append("<p>Not run (pass <code>--loss</code>).</p>")

    utt_ids = player_utterances(res, players)
    systems = list(res["systems"])
    header = ["system"]
    ref_row = ["original"]
    for uid in utt_ids:
        write_audio(media / f"{uid}-ref.flac", refs[uid])
        header.append(html.escape(uid))
        ref_row.append(f"<audio controls preload=none src='media/{uid}-ref.flac'></audio>")
    lrows = [ref_row]
    for s in systems:
        cells = [f"{html.escape(pretty(s))}<br><small>{res['systems'][s]['bitrate'] or 0:.0f} b/s</small>"]
        for uid in utt_ids:
            if uid in audio.get(s, {}):
                write_audio(media / f"{uid}-{s}.flac", audio[s][uid])
                sc = res["per_utterance"].get(s, {}).get(uid, {})
                lab = " / ".join(f"{sc[m]:.2f}" for m in ("pesq_wb", "visqol") if m in sc)
                cells.append(f"<audio controls preload=none src='media/{uid}-{s}.flac'></audio><br><small>{lab}</small>")
            else:
                cells.append("–")
        lrows.append(cells)
    parts += ["<h2>Listen</h2><p>One column per utterance, the original on top and every system below it "
              "(numbers: PESQ-WB / ViSQOL of that file).</p>", _table(header, lrows)]
    for name, (src, caption) in FIGURES.items():
        p = Path(PACKAGE_ROOT) / src
        if p.is_file():
            shutil.copy(p, media / name)
            parts.append(f"<h2>{html.escape(caption.split(':')[0])}</h2><figure><img src='media/{name}' "
                         f"alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    if res.get("failures"):
        parts.append("<h2>Failures</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in res["failures"]) + "</ul>")
    if res.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in res["notes"]) + "</ul>")
    urows = [[html.escape(u["id"]), html.escape(u["speaker"]), html.escape(u["source"]), f"{u['seconds']:.2f}"]
             for u in res["utterances"]]
    parts += ["<h2>Reference utterances</h2>", _table(["utterance", "speaker", "source", "seconds"], urows)]
    style = ("<style>body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
             "font-size:13px;text-align:left}audio{width:190px}img{max-width:100%}.meta{color:#555}</style>")
    page = ("<!doctype html><html><head><meta charset=utf-8><title>pnsc evaluation</title>" + style
            + "</head><body>" + "\n".join(parts) + "</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"
