"""PNG writer and the demo figure: valid PNG bytes, text drawn, loss events at the right place."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from pnsc.live import figure, png


def decode_png(data: bytes) -> np.ndarray:
    """Minimal reader for the writer's own format (8-bit RGB, filter 0), checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert (depth, ctype) == (8, 2)
            size = (h, w)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    h, w = size
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def test_png_roundtrip_and_text():
    c = png.Canvas(40, 20)
    c.fill(0, 0, 10, 10, (255, 0, 0))
    end = c.text(12, 2, "Hi", color=(0, 0, 255), scale=1)
    assert end == 12 + 2 * 6
    img = decode_png(png.encode_png(c.pixels))
    assert img.shape == (20, 40, 3)
    assert (img[0:10, 0:10] == (255, 0, 0)).all()
    assert ((img[2:9, 12:24] == (0, 0, 255)).all(axis=2)).sum() == png.FONT["H"].sum() + png.FONT["I"].sum()
    with pytest.raises(ValueError):
        png.encode_png(np.zeros((4, 4), dtype=np.uint8))


def test_colormap_is_monotonic_in_brightness():
    rgb = png.colormap(np.linspace(0, 1, 50)).astype(float)
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(lum) > 0).all()


def test_figure_marks_lost_and_late_packets(tmp_path):
    rng = np.random.default_rng(0)
    ref = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)  # 2 s = 50 packets
    rec = ref.copy()
    lost, late = [10, 11], [30]
    path = figure.write_call_figure(tmp_path / "f.png", ref, rec, lost, late, "test", width=500)
    img = decode_png(path.read_bytes())
    canvas = figure.render_call_figure(ref, rec, lost, late, "test", width=500)
    assert (img == canvas.pixels).all()
    # find the event strip: the row where packet cells are drawn in the 'ok' colour
    ok = np.all(img == figure.EVENT_COLORS["ok"], axis=2)
    strip_row = int(np.argmax(ok.sum(axis=1)))
    px_per_packet = 500 / 50
    left = 70

    def cell(seq: int) -> tuple:
        return tuple(img[strip_row, left + int((seq + 0.5) * px_per_packet)])

    assert cell(10) == figure.EVENT_COLORS["lost"] and cell(11) == figure.EVENT_COLORS["lost"]
    assert cell(30) == figure.EVENT_COLORS["late"]
    assert cell(0) == figure.EVENT_COLORS["ok"] and cell(49) == figure.EVENT_COLORS["ok"]
    assert ok[strip_row].sum() == pytest.approx(47 * px_per_packet, abs=3)


def test_spectrogram_finds_a_tone():
    t = np.arange(16000) / 16000
    s = figure.spectrogram_db(np.sin(2 * np.pi * 1000 * t))
    assert s.shape[1] == 257
    assert abs(int(np.median(s.argmax(axis=1))) - 32) <= 1  # 1000 Hz / 31.25 Hz per bin


def test_empty_figure_is_refused():
    with pytest.raises(ValueError, match="empty"):
        figure.render_call_figure(np.zeros(0), np.zeros(0), [], [], "x")
