"""Example shards (``examples-NNNNN.npz`` listed in ``index.json``) -> batches on the training device.

Shard arrays (data contract): features / qfeatures float16 (N, T+4, 20), lpc float32 (N, T, 16),
signal int16 (N, (T+1)*160), speaker int32 (N,) indexing the shard's ``speakers`` str array, meta.

Sequences are filtered by speaker id when loading.  When the selected shards fit in
``max_resident_mb`` they are loaded once and kept (optionally on the GPU); otherwise each epoch
streams them in chunks of shards (shuffled shard order, shuffled within the chunk).  The batch order is
a pure function of (seed, epoch), and rank r of a world of W takes the r-th W-th of every global batch,
so DistributedDataParallel ranks see disjoint data and a run can resume mid-epoch by batch number.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pnsc.shared.checksum import sha256_file

ARRAYS = ("features", "qfeatures", "lpc", "signal")


class DataError(Exception):
    pass


# ---------------------------------------------------------------- speakers, groups, splits
def load_group_map(path: str | Path, C: int | None = None) -> dict[str, int]:
    """speaker id (str) -> group index, from ``models/speaker_groups.json``.

    Accepts ``{"default_groups": 4, "groupings": {"4": {"assignment": {...}, ...}}}`` (the speaker
    encoder's file; ``{"default_C": .., "groups": ..}`` too; any dict of
    speaker -> int found under the C entry is merged, e.g. train and validation assignments), a
    ``{"assignment": {...}}`` dict, or a flat ``{speaker: group}`` dict.
    """
    obj = json.loads(Path(path).read_text())
    for key, default_key in (("groupings", "default_groups"), ("groups", "default_C")):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            C = C if C is not None else obj.get(default_key, obj.get("default_C", obj.get("default_groups", 4)))
            entry = obj[key].get(str(C))
            if entry is None:
                raise DataError(f"{path}: no grouping for C={C} (have {sorted(obj[key])})")
            obj = entry
            break
    out: dict[str, int] = {}

    def merge(d):
        for k, v in d.items():
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                out[str(k)] = int(v)

    if isinstance(obj, dict):
        flat = {k: v for k, v in obj.items() if isinstance(v, int) and not isinstance(v, bool)}
        if flat and all(k not in ("C", "k", "n_groups", "num_groups", "seed") for k in flat):
            merge(flat)
        for k, v in obj.items():
            if isinstance(v, dict) and ("assign" in k or "speaker" in k or k in ("train", "validation", "test")):
                merge(v)
    if not out:
        raise DataError(f"{path}: no speaker -> group assignment found")
    return out


def load_splits(path: str | Path) -> dict[str, list[str]]:
    obj = json.loads(Path(path).read_text())
    if isinstance(obj, dict) and "splits" in obj and isinstance(obj["splits"], dict):
        obj = obj["splits"]
    return {k: [str(s) for s in v] for k, v in obj.items() if isinstance(v, list)}


def select_speakers(splits_path=None, split: str | None = None, group_map: dict | None = None,
                    group: int | None = None) -> set[str] | None:
    """Speakers of ``split`` (if a splits file is given) within ``group`` (if given); None = all."""
    sel: set[str] | None = None
    if splits_path is not None and split is not None:
        splits = load_splits(splits_path)
        if split not in splits:
            raise DataError(f"{splits_path}: no split {split!r} (have {sorted(splits)})")
        sel = set(splits[split])
    if group is not None:
        if group_map is None:
            raise DataError("--group needs a speaker group map (--groups FILE)")
        in_group = {s for s, g in group_map.items() if g == group}
        sel = in_group if sel is None else sel & in_group
    return sel


# ---------------------------------------------------------------- shards

def list_shards(data_dir: str | Path, verify: bool = False) -> list[Path]:
    data_dir = Path(data_dir)
    index = data_dir / "index.json"
    if index.is_file():
        obj = json.loads(index.read_text())
        entries = obj.get("shards", obj) if isinstance(obj, dict) else obj
        out = []
        for e in entries:
            if isinstance(e, str):
                name, sha = e, None
            else:
                name = e.get("file") or e.get("path") or e.get("name")
                sha = e.get("sha256")
            p = data_dir / name
            if not p.is_file():
                raise DataError(f"{index}: shard {name} missing")
            if verify and sha and sha256_file(p) != sha:
                raise DataError(f"{p}: sha256 mismatch")
            out.append(p)
    else:
        out = sorted(data_dir.glob("examples-*.npz"))
    if not out:
        raise DataError(f"no example shards in {data_dir}")
    return out


@dataclass
class ShardInfo:
    path: Path
    keep: np.ndarray  # row indices kept
    speakers: np.ndarray  # str speaker id per kept row


def _scan(path: Path, speakers: set[str] | None) -> ShardInfo:
    with np.load(path, allow_pickle=False) as z:
        names = np.asarray(z["speakers"]).astype(str)
        spk = names[np.asarray(z["speaker"], dtype=np.int64)]
    keep = np.arange(len(spk)) if speakers is None else np.flatnonzero(np.isin(spk, list(speakers)))
    return ShardInfo(path, keep, spk[keep])


def _load(info: ShardInfo) -> dict[str, np.ndarray]:
    with np.load(info.path, allow_pickle=False) as z:
        return {k: np.asarray(z[k])[info.keep] for k in ARRAYS}


class ShardSet:
    """Training or validation sequences of the selected speakers, shuffled per epoch.

    ``focus`` and ``focus_fraction`` < 1 (a fine-tune that keeps seeing other speakers): every epoch holds all
    sequences of the ``focus`` speakers and a fresh random draw of the others, so that the focus speakers make
    ``focus_fraction`` of it; resident sets only."""

    def __init__(self, data_dirs, speakers: set[str] | None = None, *, group_map: dict | None = None,
                 max_resident_mb: float = 20_000, device: str | torch.device = "cpu",
                 data_on_device: bool = True, verify: bool = False, seed: int = 0,
                 focus: set[str] | None = None, focus_fraction: float = 1.0):
        if isinstance(data_dirs, (str, Path)):
            data_dirs = [data_dirs]
        paths = [p for d in data_dirs for p in list_shards(d, verify)]
        self.infos = [i for i in (_scan(p, speakers) for p in paths) if len(i.keep)]
        if not self.infos:
            raise DataError(f"no sequences for the selected speakers in {list(map(str, data_dirs))}")
        self.n = sum(len(i.keep) for i in self.infos)
        self.speaker_ids = sorted({s for i in self.infos for s in i.speakers})
        self.group_map = group_map
        self.device = torch.device(device)
        self.data_on_device = data_on_device
        self.seed = seed
        sizes = [i.path.stat().st_size * len(i.keep) / max(1, _rows(i.path)) for i in self.infos]
        total_mb = sum(sizes) / 2**20
        self.resident = total_mb <= max_resident_mb
        per = max(1, int(max_resident_mb / max(1e-9, np.mean(sizes) / 2**20)))
        self.shards_per_chunk = len(self.infos) if self.resident else per
        self._cache: dict[str, torch.Tensor] | None = None
        self.hours = self.n * (_seq_samples(self.infos[0]) - 160) / 16000 / 3600
        if self.resident:
            self._cache = self._build([*range(len(self.infos))])
        self.focus_fraction = float(focus_fraction)
        self._focus_idx = self._other_idx = None
        if focus is not None and not 0.0 < self.focus_fraction <= 1.0:  # NaN fails too
            raise DataError(f"focus fraction must be in (0, 1], got {focus_fraction}")
        if focus is not None and self.focus_fraction < 1.0:
            if not self.resident:
                raise DataError("a focus fraction below 1 needs the data resident (raise --max-resident-mb)")
            spk = np.concatenate([i.speakers for i in self.infos])
            in_focus = np.isin(spk, list(focus))
            self._focus_idx, self._other_idx = np.flatnonzero(in_focus), np.flatnonzero(~in_focus)
            if not len(self._focus_idx):
                raise DataError("no sequences of the focus speakers")

    # -- building tensors
    def _build(self, shard_ids: list[int]) -> dict[str, torch.Tensor]:
        parts = [_load(self.infos[i]) for i in shard_ids]
        spk = np.concatenate([self.infos[i].speakers for i in shard_ids])
        out = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in ARRAYS}
        out["speaker_index"] = torch.from_numpy(np.searchsorted(self.speaker_ids, spk).astype(np.int64))
        if self.group_map is not None:
            out["group"] = torch.tensor([self.group_map.get(s, -1) for s in spk], dtype=torch.long)
        if self.data_on_device and self.device.type != "cpu":
            out = {k: v.to(self.device) for k, v in out.items()}
        return out

    def _chunks(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.infos))
        if self.resident:
            return [list(range(len(self.infos)))]
        k = self.shards_per_chunk
        return [sorted(order[i:i + k].tolist()) for i in range(0, len(order), k)]

    def _others_per_epoch(self) -> int:
        """How many sequences of the other speakers an epoch draws (focus fraction < 1)."""
        n_focus = len(self._focus_idx)
        want = int(round(n_focus * (1.0 - self.focus_fraction) / self.focus_fraction))
        return min(want, len(self._other_idx))

    def epoch_batches(self, epoch: int, batch: int) -> int:
        if self._focus_idx is not None:
            return (len(self._focus_idx) + self._others_per_epoch()) // batch
        return sum(sum(len(self.infos[i].keep) for i in ch) // batch for ch in self._chunks(epoch))

    def iter_epoch(self, epoch: int, batch: int, rank: int = 0, world: int = 1, start: int = 0):
        """Yield (batch_number, dict of tensors) of rank's share of each global batch of ``batch``."""
        if batch % world:
            raise ValueError(f"global batch {batch} not divisible by world size {world}")
        per = batch // world
        b0 = 0
        for ci, chunk in enumerate(self._chunks(epoch)):
            n_chunk = sum(len(self.infos[i].keep) for i in chunk)
            nb = self.epoch_batches(epoch, batch) if self._focus_idx is not None else n_chunk // batch
            if b0 + nb <= start:
                b0 += nb
                continue
            data = self._cache if self.resident else self._build(chunk)
            rng = np.random.default_rng([self.seed, epoch, 2, ci])
            if self._focus_idx is not None:  # all focus sequences and this epoch's draw of the others
                drawn = rng.choice(self._other_idx, self._others_per_epoch(), replace=False)
                perm = torch.from_numpy(rng.permutation(np.concatenate([self._focus_idx, drawn])))
            else:
                perm = torch.from_numpy(rng.permutation(n_chunk))
            for b in range(nb):
                if b0 + b < start:
                    continue
                idx = perm[b * batch + rank * per: b * batch + (rank + 1) * per]
                if data["signal"].device.type != "cpu":
                    idx = idx.to(data["signal"].device)
                yield b0 + b, {k: v[idx].to(self.device, non_blocking=True) for k, v in data.items()}
            b0 += nb

    def iter_all(self, batch: int, rank: int = 0, world: int = 1):
        """Every sequence once, in order; rank takes sequences rank::world (validation)."""
        for ci, chunk in enumerate([list(range(len(self.infos)))] if self.resident else
                                   [list(range(i, min(i + self.shards_per_chunk, len(self.infos))))
                                    for i in range(0, len(self.infos), self.shards_per_chunk)]):
            data = self._cache if self.resident else self._build(chunk)
            n = data["signal"].shape[0]
            mine = torch.arange(rank, n, world)
            for s in range(0, len(mine), batch):
                idx = mine[s:s + batch]
                if data["signal"].device.type != "cpu":
                    idx = idx.to(data["signal"].device)
                yield {k: v[idx].to(self.device, non_blocking=True) for k, v in data.items()}

    def summary(self) -> dict:
        out = {"sequences": int(self.n), "hours": round(self.hours, 4), "speakers": len(self.speaker_ids),
               "shards": len(self.infos), "resident": self.resident}
        if self._focus_idx is not None:
            out.update(focus_fraction=self.focus_fraction, focus_sequences=int(len(self._focus_idx)),
                       other_sequences_per_epoch=self._others_per_epoch())
        return out


def _shape(path: Path, key: str) -> tuple:
    """Shape of one array of an .npz from its .npy header, without reading the data."""
    with np.load(path, allow_pickle=False) as z:
        with z.zip.open(key + ".npy") as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, _ = reader(f)
    return tuple(shape)


def _rows(path: Path) -> int:
    return int(_shape(path, "speaker")[0])


def _seq_samples(info: ShardInfo) -> int:
    return int(_shape(info.path, "signal")[1])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
