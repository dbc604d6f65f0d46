"""``pnsc demo``: a real call on loopback, watched live, with a summary and files at the end.

A receiver and a sender start in this process on 127.0.0.1 and speech goes through the whole call
path: bundled speech (or the microphone with ``--mic``) -> analysis -> 1.6 kb/s quantizer ->
websockets (with the injected loss / jitter) -> jitter buffer -> concealment -> decoder -> playback.
The sender classifies the talker live; the receiver switches to that group's personalized decoder.

While it runs: a live view (keys b = personalized <-> baseline, p = formant postfilter on/off, l = loss
0/10/20/30 %, q = quit;
a plain line per second when not on a terminal). At the end: a summary table and three files in
--out: reference.wav (what was sent), received.wav (what was played, delay removed) and call.png
(both spectrograms, lost and late packets marked). It plays through the default sound device when
there is one (--no-play: never), otherwise only writes the files. --postfilter G_N,G_D,MU (e.g.
0.7,0.85,0) runs the formant postfilter on the received audio (shown in the live view's title and the
summary's decoders line).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DECODERS = {"plpcnet-s": ("s", True), "plpcnet-l": ("l", True), "lpcnet-bl-s": ("s", False),
            "lpcnet-bl-l": ("l", False)}
DEFAULT_CLIP = "3080-5032-0005.flac"
MIC_SECONDS = 20.0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="a live loopback call with bundled speech (start here)",
                              description=__doc__, formatter_class=_Formatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="FILE", help=f"speech to send (any audio file; default: the bundled "
                     f"samples/{DEFAULT_CLIP}; the other bundled talkers are in other speaker groups)")
    src.add_argument("--mic", action="store_true", help="send live speech from the default microphone")
    p.add_argument("--seconds", type=float, default=None, metavar="N",
                   help=f"send N seconds (a file is cut or repeated; --mic default {MIC_SECONDS:g})")
    p.add_argument("--loss", type=float, default=0.0, metavar="P", help="injected message loss probability 0..1")
    p.add_argument("--burst", type=float, default=0.0, metavar="N",
                   help="mean length of loss bursts in messages (Gilbert-Elliott; default: independent losses)")
    p.add_argument("--jitter", type=float, default=0.0, metavar="MS", help="injected network jitter, mean ms")
    p.add_argument("--decoder", choices=sorted(DECODERS), default="plpcnet-s",
                   help="receiver decoder: personalized PLPCNet (per speaker group) or the generic LPCNet "
                        "baseline, size S or L (default plpcnet-s)")
    from .receive import add_postfilter_argument

    add_postfilter_argument(p)
    p.add_argument("--out", default="pnsc-demo", metavar="DIR", help="folder for the written files (default ./pnsc-demo)")
    p.add_argument("--no-play", action="store_true", help="do not play through a sound device, only write files")
    p.add_argument("--device", default=None, metavar="N", help="output sound device (index or name)")
    p.add_argument("--seed", type=int, default=0, help="seed of the injected impairments and the decoder")
    p.set_defaults(func=run)


class _Formatter(__import__("argparse").RawDescriptionHelpFormatter):
    pass


def samples_dir() -> Path:
    """``$PNSC_SAMPLES_DIR`` or the bundled ``samples/`` folder."""
    from pnsc.shared.paths import PACKAGE_ROOT

    env = os.environ.get("PNSC_SAMPLES_DIR")
    return Path(env) if env else PACKAGE_ROOT / "samples"


def output_device(requested: str | None) -> tuple[object, str | None, str]:
    """(device argument, device name or None, why not) for playback."""
    dev = int(requested) if requested is not None and requested.isdigit() else requested
    try:
        import sounddevice as sd
    except (OSError, ImportError) as exc:  # PortAudio library (or sounddevice) missing
        return dev, None, f"no audio library ({exc})"
    try:
        info = sd.query_devices(dev, "output")
    except Exception as exc:  # noqa: BLE001 - PortAudio: no device, bad index/name
        return dev, None, f"no output device ({str(exc).strip() or type(exc).__name__})"
    return dev, str(info["name"]), ""


def _validate(args) -> tuple[float, float, float] | None:
    """Check the options (CommandError on a bad one); -> the parsed ``--postfilter`` (None = off)."""
    from pnsc.cli import CommandError

    from .receive import postfilter_option

    if not 0.0 <= args.loss <= 1.0:
        raise CommandError(f"--loss is a probability 0..1 (e.g. 0.1 for 10 %), got {args.loss:g}")
    if args.burst < 0 or args.burst > 1000:
        raise CommandError(f"--burst must be a mean burst length 0..1000 messages, got {args.burst:g}")
    if not 0.0 <= args.jitter <= 2000:
        raise CommandError(f"--jitter must be 0..2000 ms, got {args.jitter:g}")
    if args.seconds is not None and not 0.5 <= args.seconds <= 3600:
        raise CommandError(f"--seconds must be 0.5..3600, got {args.seconds:g}")
    return postfilter_option(args.postfilter)


def _source_pcm(args, say):
    """(pcm, label) of the speech to send from a file (cut or repeated to --seconds)."""
    import numpy as np

    from pnsc.cli import CommandError
    from pnsc.shared.audio import load_audio

    path = Path(args.input) if args.input else samples_dir() / DEFAULT_CLIP
    if not args.input and not path.is_file():
        raise CommandError(f"bundled speech not found at {path}; pass --input FILE or --mic")
    pcm = load_audio(path)
    if len(pcm) < 1600:
        raise CommandError(f"{path}: too short to send ({len(pcm) / 16000:.2f} s, need at least 0.1 s)")
    if args.seconds is not None:
        n = int(round(args.seconds * 16000))
        pcm = np.tile(pcm, -(-n // len(pcm)))[:n]
    say(f"sending {path} ({len(pcm) / 16000:.1f} s)")
    return pcm.astype(np.float32), path.name


def run(args) -> int:
    from pnsc.cli import CommandError
    from pnsc.live.dashboard import Dashboard
    from pnsc.live.loopback import LoopbackCall, LoopbackOptions

    postfilter = _validate(args)
    say = (lambda m: print(f"pnsc demo: {m}", file=sys.stderr, flush=True))
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create --out folder {out}: {exc.strerror or exc}") from None

    dev, dev_name, why = (None, None, "--no-play") if args.no_play else output_device(args.device)
    if args.device is not None and dev_name is None and not args.no_play:
        raise CommandError(f"cannot use output device {args.device!r}: {why}")
    size, personalized = DECODERS[args.decoder]
    opts = LoopbackOptions(size=size, personalized=personalized, loss=args.loss, burst=args.burst,
                           jitter_ms=args.jitter, seed=args.seed, device=dev, play=dev_name is not None,
                           postfilter=postfilter)

    source_kw: dict = {}
    if args.mic:
        from pnsc.sender.capture import DeviceSource

        try:
            source_kw["source"] = DeviceSource(None)
        except Exception as exc:  # noqa: BLE001 - PortAudio: no input device
            raise CommandError(f"--mic needs an input device: {str(exc).strip() or type(exc).__name__}") from None
        source_kw["max_seconds"] = args.seconds or MIC_SECONDS
        label = "microphone"
        say(f"sending the microphone for {source_kw['max_seconds']:g} s (q stops earlier)")
    else:
        source_kw["source_pcm"], label = _source_pcm(args, say)

    from pnsc.receiver.postfilter import describe_postfilter

    pf_text = "" if postfilter is None else f", {describe_postfilter(postfilter)}"
    say(f"loading the {args.decoder} decoders{pf_text} and the speaker classifier")
    try:
        call = LoopbackCall(opts, **source_kw)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    say(f"playing through: {dev_name}" if dev_name else f"not playing ({why}): writing files only")

    view = Dashboard(call.snapshot, on_ab=call.toggle_personalized, on_loss=call.set_loss, on_quit=call.stop,
                     on_postfilter=call.toggle_postfilter,
                     title=f"pnsc demo: loopback call, {label}{pf_text}", stream=sys.stdout)
    view.start()
    try:
        try:
            result = call.run()
        except OSError as exc:  # sound device failed to open or died
            raise CommandError(f"audio device error: {exc}") from None
    finally:
        view.stop()
    _write_outputs(call, result, out, label, args, say)
    return 0


def _write_outputs(call, result, out: Path, label: str, args, say) -> None:
    import numpy as np
    import soundfile as sf

    from pnsc.live.align import aligned, estimate_delay
    from pnsc.live.figure import Marker, write_call_figure
    from pnsc.live.summary import summary_figures, summary_table

    ref = result.sent_pcm
    delay = estimate_delay(ref, result.played_pcm)
    rec = aligned(result.played_pcm, delay, len(ref))
    fig = summary_figures(result)
    fig["alignment_delay_ms"] = round(delay / 16.0, 1)
    paths = {"reference": out / "reference.wav", "received": out / "received.wav", "figure": out / "call.png",
             "summary": out / "summary.json"}
    sf.write(paths["reference"], ref, 16000, subtype="PCM_16")
    sf.write(paths["received"], np.clip(rec, -1, 1), 16000, subtype="PCM_16")
    log = result.packets
    markers = [Marker(seq * 0.04, name) for seq, name in log.decoders[1:]] if len(log.decoders) > 1 else []
    if log.decoders and not markers and log.decoders[0][0] > 0:
        markers = [Marker(log.decoders[0][0] * 0.04, log.decoders[0][1])]
    title = (f"pnsc demo: {label}, loss {fig['loss_percent']:.0f} %, jitter {args.jitter:g} ms, "
             f"{fig['decoders'].split(',')[-1].split()[0] if log.decoders else args.decoder}")
    if len(ref):
        made = int(fig["packets_sent"] or 0)
        write_call_figure(paths["figure"], ref, rec, log.seqs("concealed", made), log.seqs("late", made), title,
                          received_label=f"received ({fig['decoders']})"[:80], markers=markers,
                          recovered=log.seqs("recovered", made))
    else:
        paths.pop("figure")
    paths["summary"].write_text(json.dumps(fig, indent=1))

    from rich.console import Console

    console = Console(file=sys.stdout)
    console.print()
    console.print(summary_table(fig))
    print("files:")
    rows = [(paths["received"], "what the receiver played: listen to this"),
            (paths["reference"], "what the sender sent")]
    if "figure" in paths:
        rows.append((paths["figure"], "spectrograms of both, lost and late packets marked: open this"))
    rows.append((paths["summary"], "the numbers above"))
    width = max(len(str(p)) for p, _ in rows)
    for p, what in rows:
        print(f"  {str(p):<{width}}   {what}")
    if result.device_name:
        print(f"played through: {result.device_name}")
    else:
        print("no sound played (no output device): open received.wav to listen")
    if result.quit_early:
        print("stopped early (q)")
    print("try: --loss 0.1 --burst 3, --jitter 40, --decoder lpcnet-bl-s, --input samples/<other talker>.flac, --mic")
