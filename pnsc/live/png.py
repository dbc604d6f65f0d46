"""Tiny RGB raster and PNG writer (numpy + zlib only): fills, a 5x7 bitmap font, a colour map.

Enough to draw the demo's spectrogram figure without a plotting library in the runtime install.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_GLYPHS_SRC = {
    "A": ".###.#...##...#######...##...##...#", "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.", "D": "###..#..#.#...##...##...##..#.###..",
    "E": "######....#....####.#....#....#####", "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####", "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.", "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#", "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##.#.##...##...##...#", "N": "#...##...###..##.#.##..###...##...#",
    "O": ".###.#...##...##...##...##...#.###.", "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#", "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.", "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.", "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.", "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..", "Z": "#####....#...#...#...#...#....#####",
    "0": ".###.#...##..###.#.###..##...#.###.", "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####", "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.", "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.", "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.", "9": ".###.#...##...#.####....#...#..##..",
    " ": "." * 35, ".": "." * 25 + ".##...##..", ",": "." * 20 + ".##....#...#...",
    ":": ".....##...##........##...##........", "-": "...............#####...............",
    "/": ".........#...#...#...#...#.........", "%": "##...##..#...#...#...#...#..##...##",
    "(": "...#...#...#....#....#.....#.....#.", ")": ".#.....#.....#....#....#...#...#...",
    "=": "..........#####.....#####..........", "+": ".......#....#..#####..#....#.......",
    "_": "." * 30 + "#####", ">": ".#.....#.....#.....#...#...#...#...",
    "?": ".###.#...#....#...#...#.........#..",
}
GLYPH_W, GLYPH_H = 5, 7
FONT: dict[str, np.ndarray] = {
    ch: np.array([c == "#" for c in bits], dtype=bool).reshape(GLYPH_H, GLYPH_W) for ch, bits in _GLYPHS_SRC.items()
}

# a perceptually ordered dark-to-light map (anchors of matplotlib's "magma")
_MAP_ANCHORS = np.array([(0, 0, 4), (59, 15, 112), (140, 41, 129), (222, 73, 104), (254, 159, 109),
                         (252, 253, 191)], dtype=np.float64)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to uint8 RGB (shape + (3,))."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    pos = v * (len(_MAP_ANCHORS) - 1)
    i = np.minimum(pos.astype(int), len(_MAP_ANCHORS) - 2)
    f = (pos - i)[..., None]
    rgb = _MAP_ANCHORS[i] * (1 - f) + _MAP_ANCHORS[i + 1] * f
    return np.round(rgb).astype(np.uint8)


class Canvas:
    """An RGB image (H, W, 3) uint8 with simple drawing operations; coordinates are (x, y) pixels."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int] = (255, 255, 255)):
        if width <= 0 or height <= 0:
            raise ValueError(f"canvas size must be positive, got {width}x{height}")
        self.pixels = np.empty((height, width, 3), dtype=np.uint8)
        self.pixels[:] = background

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    def fill(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int], alpha: float = 1.0) -> None:
        """Fill the rectangle [x0, x1) x [y0, y1) (clipped), blending with ``alpha``."""
        x0, x1 = max(0, int(x0)), min(self.width, int(x1))
        y0, y1 = max(0, int(y0)), min(self.height, int(y1))
        if x0 >= x1 or y0 >= y1:
            return
        region = self.pixels[y0:y1, x0:x1]
        if alpha >= 1.0:
            region[:] = color
        else:
            blend = region.astype(np.float64) * (1 - alpha) + np.asarray(color, dtype=np.float64) * alpha
            region[:] = np.round(blend).astype(np.uint8)

    def paste(self, x0: int, y0: int, image: np.ndarray) -> None:
        """Copy an (h, w, 3) uint8 image with its top-left corner at (x0, y0) (clipped)."""
        h, w = image.shape[:2]
        xa, ya = max(0, x0), max(0, y0)
        xb, yb = min(self.width, x0 + w), min(self.height, y0 + h)
        if xa < xb and ya < yb:
            self.pixels[ya:yb, xa:xb] = image[ya - y0:yb - y0, xa - x0:xb - x0]

    def text(self, x: int, y: int, s: str, color: tuple[int, int, int] = (0, 0, 0), scale: int = 2) -> int:
        """Draw ``s`` (upper-cased; unknown characters as '?') from (x, y); returns the end x."""
        for ch in s.upper():
            glyph = FONT.get(ch, FONT["?"])
            ys, xs = np.nonzero(glyph)
            for gy, gx in zip(ys, xs):
                self.fill(x + gx * scale, y + gy * scale, x + (gx + 1) * scale, y + (gy + 1) * scale, color)
            x += (GLYPH_W + 1) * scale
        return x

    @staticmethod
    def text_width(s: str, scale: int = 2) -> int:
        return len(s) * (GLYPH_W + 1) * scale

    def save_png(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(encode_png(self.pixels))
        return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image (8-bit truecolour, no filtering)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))
