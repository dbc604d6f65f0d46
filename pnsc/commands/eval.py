"""``pnsc eval``: objective quality of pnsc against peer codecs, with an HTML report to listen to.

Encodes reference utterances at 1.6 kb/s, decodes them with every decoder family (PLPCNet-S/-L with
the group the sender's classifier picks, LPCNet-BL-S/-L) and runs the peer codecs (Codec 2 1600 and
700C, Opus 6 and 9 kb/s, from the Debian packages codec2 and opus-tools); scores everything against
the references (PESQ-WB, STOI/ESTOI, ViSQOL speech, DNSMOS, speaker similarity) with 95% confidence
intervals; pairs PLPCNet with its same-size baseline; decodes each utterance with every group's
decoder (wrong-group test); optionally measures quality versus packet loss.  Writes
``OUT/index.html``, ``OUT/media/`` and ``OUT/scores.json``.

Default references: 3 utterances of each of the 5 held-out LibriSpeech test-other speakers
(../shared/data/librispeech-excerpts, or $PNSC_SHARED_DIR/data/...) plus 5 prompts of the held-out
US English Asterisk voice if the Debian package asterisk-core-sounds-en-g722 is installed.
The scoring tools install with: pip install 'pnsc[eval]'.

Example (regenerates the shipped report): pnsc eval --out docs/report
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return vals


def _spread(utts: list, count: int) -> list:
    """``count`` utterances covering as many speakers as possible (first of each speaker first)."""
    seen, first, rest = set(), [], []
    for u in utts:
        (rest if u.speaker in seen else first).append(u)
        seen.add(u.speaker)
    return (first + rest)[:count]


def register(subparsers) -> None:
    from pnsc.evaluation.metrics import ALL_METRICS
    from pnsc.evaluation.runner import DEFAULT_SYSTEMS

    p = subparsers.add_parser("eval", help="objective quality vs peer codecs; HTML report with audio",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refs", metavar="DIR", default=None, help="folder of WAV/FLAC references (default: the held-out set)")
    p.add_argument("--out", metavar="DIR", default="eval-report", help="report folder (default: eval-report)")
    p.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
                   help=f"comma-separated systems (default: all: {','.join(DEFAULT_SYSTEMS)})")
    p.add_argument("--metrics", default=",".join(ALL_METRICS), help=f"comma-separated metrics (default: all: {','.join(ALL_METRICS)})")
    p.add_argument("--loss", type=_floats, default=(0.0, 0.05, 0.1, 0.2, 0.3), metavar="RATES",
                   help="packet-loss rates for the loss curves, e.g. 0,0.05,0.1,0.2,0.3 (default); '' skips them")
    p.add_argument("--burst", type=_floats, default=(1.0, 3.0), metavar="LENGTHS",
                   help="mean burst lengths in packets (1 = random loss; default 1,3)")
    p.add_argument("--loss-utterances", type=int, default=5, help="utterances for the loss curves, one per speaker first (default 5)")
    p.add_argument("--per-speaker", type=int, default=3, help="test-other utterances per speaker (default 3)")
    p.add_argument("--asterisk", type=int, default=5, help="held-out Asterisk English prompts (default 5; 0 = none)")
    p.add_argument("--max-seconds", type=float, default=6.0, help="crop each reference to this length (default 6)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N references")
    p.add_argument("--no-wrong-group", action="store_true", help="skip decoding with every group's decoder")
    p.add_argument("--backend", choices=("auto", "runtime", "reference"), default="auto",
                   help="pnsc decoder: the C runtime, the onnxruntime reference decoder, or auto (runtime if built)")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None,
                   help="runtime decoder precision (default: the runtime's default, fp32)")
    p.add_argument("--postfilter", default="off", metavar="SPEC",
                   help="formant postfilter on the pnsc decoders' output: 'off' (default) or G_N,G_D,MU, e.g. "
                        "0.7,0.85,0 (pnsc.receiver.postfilter; the loss curves decode without it)")
    p.add_argument("--quiet-floor", default="off", metavar="SPEC",
                   help="experimental: a larger sampling floor in quiet frames, 'off' (default) or "
                        "FLOOR,QUIET_C0,LOUD_C0, e.g. 0.002,-2,1.5 (pnsc.receiver.quiet_floor; the loss curves "
                        "decode without it)")
    p.add_argument("--redundancy", type=_floats, default=(0.0, 2.0), metavar="KS",
                   help="redundancy settings K for the pnsc loss curves (default 0,2)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes for decoding and scoring (default: 2, or 1 on a one-core machine)")
    p.add_argument("--players", type=int, default=6, help="utterances with audio players in the report (default 6)")
    p.add_argument("--models-dir", default=None, help="models folder (default: $PNSC_MODELS_DIR or models/)")
    p.add_argument("--seed", type=int, default=0, help="decoder sampling and loss-pattern seed")
    p.set_defaults(func=run)


def run(args) -> int:
    from pnsc.cli import CommandError
    from pnsc.evaluation.errors import EvalError

    try:
        return _run(args)
    except EvalError as exc:
        raise CommandError(str(exc)) from None


def _run(args) -> int:
    from pnsc.cli import CommandError
    from pnsc.evaluation import refs as R
    from pnsc.evaluation.loss import run_loss
    from pnsc.evaluation.peers import PEERS
    from pnsc.evaluation.report import write_report
    from pnsc.evaluation.runner import EvalConfig, _progress, run_eval

    from pnsc.evaluation.errors import require_module

    t0 = time.time()
    require_module("tqdm", "tqdm", "progress display")
    require_module("matplotlib", "matplotlib", "the report's charts")
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    if args.jobs < 1 or args.players < 0 or args.loss_utterances < 0:
        raise CommandError("--jobs must be >= 1, --players and --loss-utterances >= 0")
    if any(not 0 <= k <= 8 or k != int(k) for k in args.redundancy):
        raise CommandError("--redundancy values must be whole numbers 0..8")
    if any(not 0 <= r < 1 for r in args.loss):
        raise CommandError("--loss rates must be in 0..1 (e.g. 0.1 for 10%)")
    maxs = args.max_seconds if args.max_seconds and args.max_seconds > 0 else None
    if args.refs:
        utts = R.load_folder(args.refs, maxs, args.limit)
        notes = [f"references: every WAV/FLAC under {args.refs}"]
    else:
        utts = R.default_refs(args.per_speaker, args.asterisk, maxs)
        if args.limit:
            utts = utts[: args.limit]
        notes = ["references: LibriSpeech test-other (5 speakers no decoder or classifier was trained on)"]
        if args.asterisk and not any(u.source.startswith("asterisk") for u in utts):
            notes.append(f"held-out Asterisk English prompts not found at {R.asterisk_dir()} "
                         "(apt-get install asterisk-core-sounds-en-g722 to add them)")
        elif args.asterisk:
            notes.append("plus prompts of the US English Asterisk voice (held out: evaluation only)")
    from pnsc.evaluation.metrics import check_signal

    for u in utts:
        check_signal(u.audio, f"reference {u.id}")
    if maxs:
        notes.append(f"references cropped to {maxs:g} s")
    print(f"pnsc eval: {len(utts)} references, systems {', '.join(systems)}", file=sys.stderr)
    from .receive import postfilter_option

    postfilter = postfilter_option(args.postfilter)
    from pnsc.receiver.quiet_floor import parse_quiet_floor

    try:
        quiet_floor = parse_quiet_floor(args.quiet_floor)
    except ValueError as e:
        raise CommandError(f"--quiet-floor: {e}") from None
    if quiet_floor is not None:
        notes.append("quiet-frame sampling floor on every pnsc decoder: {:g} at c0 <= {:g}, ramp to c0 {:g}"
                     .format(*quiet_floor))
    if postfilter is not None:
        notes.append("formant postfilter on every pnsc decoder: g_n {}, g_d {}, mu {}".format(*postfilter))
    cfg = EvalConfig(systems=systems, metrics=metrics, backend=args.backend, precision=args.precision, jobs=args.jobs,
                     postfilter=postfilter, quiet_floor=quiet_floor,
                     wrong_group=not args.no_wrong_group, seed=args.seed, models_dir=args.models_dir,
                     loss_rates=tuple(args.loss), loss_bursts=tuple(args.burst),
                     loss_utterances=args.loss_utterances, notes=notes)
    res, audio = run_eval(utts, cfg)
    if args.loss and args.loss_utterances:
        peers = [PEERS[s] for s in systems if s in PEERS]
        cls = res.get("classification") or {}
        res["loss"] = run_loss(_spread(utts, args.loss_utterances), peers, sorted(args.loss), args.burst, metrics,
                               _progress, args.seed, groups=cls.get("utterance_group", {}),
                               redundancies=tuple(int(k) for k in args.redundancy), size="s",
                               precision=args.precision, models_dir=args.models_dir)
    res["elapsed_s"] = time.time() - t0
    path = write_report(res, audio, {u.id: u.audio for u in utts}, Path(args.out), args.players)
    from pnsc.evaluation.report import headline_rows

    head, rows = headline_rows(res)
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(c.replace("<small>", "").replace("</small>", "") for c in r))
    print(f"pnsc eval: wrote {path} in {res['elapsed_s'] / 60:.1f} min", file=sys.stderr)
    return 0
