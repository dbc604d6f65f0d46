"""The demo's figure: reference and received spectrograms with the call's loss events marked.

Drawn with :mod:`pnsc.live.png` (numpy + zlib), so writing it needs no plotting library.
Layout, top to bottom: title; reference spectrogram; received spectrogram with every concealed
40 ms packet shaded; an event strip (one cell per packet: received, lost, late) with decoder
changes marked; a time axis in seconds; a legend.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .png import Canvas, colormap

from pnsc.shared.constants import SAMPLE_RATE  # noqa: E402
PACKET_SECONDS = 0.04
EVENT_COLORS = {"ok": (120, 190, 120), "lost": (220, 40, 40), "late": (245, 150, 30), "recovered": (60, 150, 230)}
KIND_NAMES = ("ok", "lost", "late", "recovered")
MARKER_COLOR = (40, 90, 220)
LEVELS = 64  # colour steps of the spectrograms (invisible, halves the PNG size)


@dataclass(frozen=True)
class Marker:
    """A labelled instant on the received panel (e.g. the talker's group decided, decoder switched)."""
    time_s: float
    label: str


def spectrogram_db(x: np.ndarray, n_fft: int = 512, hop: int = 160) -> np.ndarray:
    """Log-power spectrogram (frames, n_fft // 2 + 1) in dB of a 16 kHz signal (Hann window)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(n_fft)[None, :]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return 10.0 * np.log10(power + 1e-10)


def _panel(spec_db: np.ndarray, width: int, height: int, top_db: float, floor_db: float) -> np.ndarray:
    """Resize a (frames, bins) dB spectrogram to an (height, width, 3) image, low frequencies at the bottom."""
    cols = np.minimum((np.arange(width) * len(spec_db) / width).astype(int), len(spec_db) - 1)
    rows = np.minimum((np.arange(height) * spec_db.shape[1] / height).astype(int), spec_db.shape[1] - 1)
    img = spec_db[cols][:, rows].T[::-1]
    v = np.clip((img - floor_db) / max(top_db - floor_db, 1e-6), 0.0, 1.0)
    return colormap(np.round(v * (LEVELS - 1)) / (LEVELS - 1))


def packet_kinds(n_packets: int, lost, late, recovered=()) -> np.ndarray:
    """Per-packet kind codes for the event strip (indices into ``KIND_NAMES``): 0 received, 1 lost
    (concealed), 2 late (concealed, arrived after its playout), 3 recovered from redundancy."""
    kinds = np.zeros(n_packets, dtype=np.int8)
    for code, seqs in ((3, recovered), (1, lost), (2, late)):
        for seq in seqs:
            if 0 <= seq < n_packets:
                kinds[seq] = code
    return kinds


def render_call_figure(reference: np.ndarray, received: np.ndarray, lost: list[int], late: list[int],
                       title: str, received_label: str = "received", markers: list[Marker] | None = None,
                       width: int = 1000, panel_height: int = 180, recovered: list[int] = ()) -> Canvas:
    """Draw the figure; ``received`` must be time-aligned with ``reference`` (packet k at k * 40 ms)."""
    duration = max(len(reference), len(received)) / SAMPLE_RATE
    if duration <= 0:
        raise ValueError("nothing to plot: both signals are empty")
    n = int(round(duration * SAMPLE_RATE))
    ref = np.pad(np.asarray(reference, dtype=np.float64), (0, n - len(reference)))
    rec = np.pad(np.asarray(received, dtype=np.float64), (0, n - len(received)))
    s_ref, s_rec = spectrogram_db(ref), spectrogram_db(rec)
    top = float(max(s_ref.max(), s_rec.max()))
    floor = top - 80.0

    left, right, gap = 70, 20, 28
    canvas = Canvas(left + width + right, 40 + 2 * (panel_height + gap) + 84)
    canvas.text(left, 10, title, scale=2)
    y_ref = 40 + gap - 8
    y_rec = y_ref + panel_height + gap
    for y, spec, label in ((y_ref, s_ref, "reference (sender input)"), (y_rec, s_rec, received_label)):
        canvas.text(left, y - 18, label, scale=2)
        canvas.paste(left, y, _panel(spec, width, panel_height, top, floor))
        for khz in (0, 2, 4, 6, 8):
            yy = y + panel_height - 1 - int(round(khz / 8 * (panel_height - 1)))
            canvas.fill(left - 6, yy, left, yy + 1, (0, 0, 0))
            canvas.text(left - 8 - canvas.text_width(str(khz), 1) - 2, yy - 3, str(khz), scale=1)
        canvas.text(4, y + panel_height // 2 - 3, "KHZ", scale=1)

    n_packets = int(np.ceil(duration / PACKET_SECONDS))
    kinds = packet_kinds(n_packets, lost, late, recovered)
    px_per_s = width / duration
    # shade concealed packets on the received panel
    for seq in np.nonzero((kinds == 1) | (kinds == 2))[0]:
        x0 = left + int(seq * PACKET_SECONDS * px_per_s)
        x1 = max(x0 + 1, left + int((seq + 1) * PACKET_SECONDS * px_per_s))
        color = EVENT_COLORS["lost"] if kinds[seq] == 1 else EVENT_COLORS["late"]
        canvas.fill(x0, y_rec, x1, y_rec + panel_height, color, alpha=0.35)
    # event strip
    y_strip = y_rec + panel_height + 6
    canvas.text(4, y_strip + 2, "PACKETS", scale=1)
    for seq in range(n_packets):
        x0 = left + int(seq * PACKET_SECONDS * px_per_s)
        x1 = max(x0 + 1, left + int((seq + 1) * PACKET_SECONDS * px_per_s))
        color = EVENT_COLORS[KIND_NAMES[int(kinds[seq])]]
        canvas.fill(x0, y_strip, x1, y_strip + 12, color)
    # markers (decisions, switches)
    for i, m in enumerate(markers or []):
        x = left + int(m.time_s * px_per_s)
        canvas.fill(x, y_rec, x + 2, y_strip + 12, MARKER_COLOR)
        canvas.text(x + 4, y_rec + 4 + 12 * (i % 3), m.label, color=(255, 255, 255), scale=1)
    # time axis
    y_axis = y_strip + 18
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600) if duration / s <= 16)
    t = 0.0
    while t <= duration + 1e-9:
        x = left + int(t * px_per_s)
        canvas.fill(x, y_axis, x + 1, y_axis + 6, (0, 0, 0))
        label = f"{t:g}"
        canvas.text(x - canvas.text_width(label, 1) // 2, y_axis + 9, label, scale=1)
        t += step
    canvas.text(left + width - canvas.text_width("TIME (S)", 1), y_axis + 20, "time (s)", scale=1)
    # legend
    x = left
    y_leg = y_axis + 36
    n = [int((kinds == k).sum()) for k in range(len(KIND_NAMES))]
    for key, label in (("ok", f"received {n[0]}"), ("recovered", f"recovered {n[3]}"),
                       ("lost", f"lost {n[1]}"), ("late", f"late {n[2]}")):
        canvas.fill(x, y_leg, x + 14, y_leg + 14, EVENT_COLORS[key])
        x = canvas.text(x + 20, y_leg, label, scale=2) + 24
    if markers:
        canvas.fill(x, y_leg, x + 4, y_leg + 14, MARKER_COLOR)
        canvas.text(x + 10, y_leg, "decoder change", scale=2)
    return canvas


def write_call_figure(path: str | Path, *args, **kwargs) -> Path:
    """Render (see :func:`render_call_figure`) and save as PNG; returns the path."""
    return render_call_figure(*args, **kwargs).save_png(path)
