#!/usr/bin/env python3
"""A round's shipping verdict per candidate slot, from what `scripts/judge_round.sh` measured.

The rule every round since 15 applied by hand: a candidate ships when it decodes **better on new talkers and
worse on none**. Evidence, each paired against what ships in the slot (95 % CI, Student t):

- ``heldout-seeds``: the 20 held-out utterances, per-utterance means over decoder seeds 0-2
  (``OUT/ev/cand-s{0,1,2}`` against the release's ``REF/s{0,1,2}.json``);
- ``heldout-55``: the 55 held-out utterances, seed 0 (``OUT/ev/cand-55`` against ``REF/55.json``);
- ``validation-clips`` / ``training-clips``: group G's clips (``OUT/clips/gG.json``) of validation speakers
  (new talkers too) and training speakers.

A personalized slot (``plpcnet-s-g1-ft``) is judged on its group's held-out utterances (the group the sender's
classifier picked) and its group's clips; a baseline slot (``lpcnet-bl-s``) on all held-out utterances and on
the clips of the groups it serves (where its size ships no fine-tune, as for group 3). A metric counts as
better or worse when its CI excludes zero. Evidence is ``better`` (gains only), ``worse`` (losses only),
``trade`` (both) or ``level``; a slot's verdict is ``ships`` when some new-talker evidence is better and none
of its evidence is worse or a trade, otherwise ``worse``, ``trade`` or ``level`` from all of it. A gain on fewer
than ``--min-n`` items (default 6: group 3 has 4 validation clips) is listed but ships nothing; a loss always
counts. Eight metrics
at 95 % each will now and then flag one by chance: the table lists which metrics moved so that a reader can
weigh a lone edge against a consistent picture (rounds 17-20 did), and which of them still hold under Holm's
correction over the evidence's metrics (family-wise 5 %, from each paired t-test's p). A slot that ships is
``firm`` when one of its new-talker gains holds so, ``replicated`` when none does but the same metric gains in
two of its new-talker evidences (round 27's LPCNet-BL-S: PESQ-WB over 3 seeds of the 20 and on the 55, which
share speakers), and ``narrow`` otherwise (round 27's PLPCNet-L group 1: DNSMOS OVRL +0.099 +- 0.098 over 7
validation clips alone). The rule itself is unchanged.

Release check (round 23): slots that ship by that rule are then put together into the release they would make
(REF's per-utterance scores with the shipping slots' utterances taken from the candidate reports, as
`scripts/compose_release_scores.py` writes it), and each personalized family is paired against its baseline in
it (PLPCNet-S against LPCNet-BL-S, on the held-out sets). A release in which the family falls significantly below
its baseline on a metric where REF's did not breaks the issue's target "PLPCNet-S scores at least LPCNet-BL-S":
the shipping fine-tunes of that size are then ``held back``. (Round 23's float32 group-2 decoder shipped by the
slot rule on one measure and would have put PLPCNet-S below BL-S on DNSMOS over 3 seeds.) Only losses that the
fine-tunes bring count: the release is composed once more without them, with the new baseline alone, and a loss
already there comes from the baseline getting better than the family. That is reported on the baseline's slot
(round 24: float32 BL-L gained DNSMOS on new talkers and left PLPCNet-L below it), never a reason to hold a better
decoder back.

    python scripts/round_verdict.py CANDRUNS OUT REF [--shipped runs/shipped] [--markdown OUT/verdict.md]
        [--json OUT/verdict.json] [--min-n 6]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from compare_reports import DEFAULT_METRICS, load_pooled, utterance_groups  # noqa: E402
from compose_release_scores import take_utterances  # noqa: E402
from pnsc.evaluation.stats import holm, paired_difference, show_table  # noqa: E402

# every slot reads the same reports: each is loaded once
_pooled = lru_cache(maxsize=None)(load_pooled)
_groups = lru_cache(maxsize=None)(utterance_groups)

SLOT_RE = re.compile(r"^(?:lpcnet-bl-(?P<bs>[sl])|plpcnet-(?P<ps>[sl])-g(?P<g>\d+)-ft)$")
NEW_TALKERS = ("heldout-seeds", "heldout-55", "validation-clips")


@dataclass
class Evidence:
    """One paired comparison of a candidate against what ships in its slot."""
    kind: str
    subset: str
    n: int
    better: list[str] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)
    diffs: dict[str, dict] = field(default_factory=dict)
    holds: list[str] = field(default_factory=list)  # of better + worse: significant under Holm over the metrics

    @property
    def verdict(self) -> str:
        return picture(bool(self.better), bool(self.worse))

    def can_ship(self, min_n: int) -> bool:
        """Whether a gain here may ship a decoder: evidence on new talkers, of at least ``min_n`` items."""
        return self.kind in NEW_TALKERS and self.n >= min_n


@dataclass
class SlotVerdict:
    slot: str
    verdict: str
    evidence: list[Evidence]
    held: str = ""  # why a slot that ships by the rule is held back (the release check)
    note: str = ""  # what the release check reports about a shipping slot without holding it back
    min_n: int = 6

    @property
    def firm_gains(self) -> list[tuple[Evidence, str]]:
        """The new-talker gains (on at least ``min_n`` items) that hold under Holm's correction."""
        return [(e, m) for e in self.evidence if e.can_ship(self.min_n) for m in e.better if m in e.holds]

    @property
    def replicated_gains(self) -> list[str]:
        """Metrics that gain in at least two new-talker evidences (each on at least ``min_n`` items)."""
        seen: dict[str, int] = {}
        for e in self.evidence:
            if e.can_ship(self.min_n):
                for m in e.better:
                    seen[m] = seen.get(m, 0) + 1
        return [m for m, k in seen.items() if k >= 2]

    @property
    def strength(self) -> str:
        """For a slot that ships: ``firm`` when a gain on new talkers holds under Holm's correction,
        ``replicated`` when none does but one metric gains in two new-talker evidences, else ``narrow`` (a lone
        edge among the metrics); empty for the other verdicts."""
        if self.verdict != "ships":
            return ""
        return "firm" if self.firm_gains else "replicated" if self.replicated_gains else "narrow"


@dataclass
class ReleaseCheck:
    """A personalized family against its baseline on one held-out set, in REF and in the composed release."""
    family: str
    baseline: str
    kind: str
    before: Evidence
    after: Evidence
    baseline_only: Evidence | None = None  # the release with the shipping slots but this size's fine-tunes

    @property
    def new_losses(self) -> list[str]:
        return [m for m in self.after.worse if m not in self.before.worse]

    @property
    def from_fine_tunes(self) -> list[str]:
        """New losses that the release with only the new baseline (no fine-tune of this size) does not have:
        the shipping fine-tunes put their family below the baseline. These hold the fine-tunes back."""
        base = self.baseline_only.worse if self.baseline_only is not None else []
        return [m for m in self.new_losses if m not in base]

    @property
    def from_baseline(self) -> list[str]:
        """New losses already there with the new baseline alone: the baseline got better than the family.
        Reported (the target is not met), never a reason to hold an improvement back."""
        return [m for m in self.new_losses if m not in self.from_fine_tunes]


def picture(better: bool, worse: bool) -> str:
    """``trade`` (gains and losses), ``better``, ``worse`` or ``level``."""
    return "trade" if better and worse else "better" if better else "worse" if worse else "level"


def parse_slot(name: str) -> tuple[str, str, int | None]:
    """``(family, size, group)`` of a slot name; group None for a baseline slot."""
    m = SLOT_RE.match(name)
    if not m:
        raise ValueError(f"{name!r} is not a slot name (lpcnet-bl-s, lpcnet-bl-l, plpcnet-s-g1-ft, ...)")
    if m.group("bs"):
        return f"lpcnet-bl-{m.group('bs')}", m.group("bs"), None
    return f"plpcnet-{m.group('ps')}", m.group("ps"), int(m.group("g"))


def compare(kind: str, subset: str, new: list[list[float]], old: list[list[float]], metrics) -> Evidence:
    """Paired differences per metric (``new[i]`` and ``old[i]`` hold metric i's per-item values)."""
    ev = Evidence(kind, subset, n=0)
    for m, a, b in zip(metrics, new, old):
        d = paired_difference(a, b)
        if not d["n"]:
            continue
        ev.n = max(ev.n, d["n"])
        ev.diffs[m] = {k: d[k] for k in ("mean", "ci95", "wins", "n", "significant", "p")}
        if d["significant"]:
            (ev.better if d["mean"] > 0 else ev.worse).append(m)
    ev.holds = holm({m: d["p"] for m, d in ev.diffs.items()})
    return ev


def heldout_evidence(kind: str, ref: str, cand: str, system: str, group: int | None, metrics) -> Evidence | None:
    """The candidate reports' ``system`` against the release's, on ``group``'s utterances (None: all)."""
    if group is None:
        return pair_systems(kind, _pooled(cand), system, _pooled(ref), system, metrics)
    groups = _groups(cand)
    return pair_systems(kind, _pooled(cand), system, _pooled(ref), system, metrics,
                        only=lambda u: groups.get(u) == group, subset=f"group {group}")


def _column(scores: dict, system: str, utts: list[str], metric: str) -> list[float]:
    """One metric's per-utterance values of ``system`` in pooled scores (NaN where unscored)."""
    return [float("nan") if scores[system][u].get(metric) is None else scores[system][u][metric] for u in utts]


def heldout_sets(out: Path, ref: Path) -> list[tuple[str, str, str]]:
    """``(kind, REF spec, candidate spec)`` of the held-out evidence whose reports all exist: the 20 utterances
    over decoder seeds 0-2, and the 55 (seed 0)."""
    sets = [("heldout-seeds", ",".join(str(ref / f"s{k}.json") for k in range(3)),
             ",".join(str(out / "ev" / f"cand-s{k}" / "scores.json") for k in range(3))),
            ("heldout-55", str(ref / "55.json"), str(out / "ev" / "cand-55" / "scores.json"))]
    return [s for s in sets if all(Path(x).exists() for x in f"{s[1]},{s[2]}".split(","))]


def _norm(p: str | Path) -> str:
    return os.path.normpath(str(p))


def clip_evidence(path: Path, cand_path: str, ref_path: str, metrics) -> list[Evidence]:
    """Validation- and training-speaker clips of one group: the run at ``cand_path`` against the one at
    ``ref_path`` (paths as `compare_branches.py` recorded them)."""
    d = json.loads(path.read_text())
    by_path = {_norm(v["path"]): label for label, v in d["runs"].items()}
    cand, ref = by_path.get(_norm(cand_path)), by_path.get(_norm(ref_path))
    if cand is None or ref is None or cand == ref:
        return []
    out = []
    for split in ("validation", "training"):
        sc = d.get(split, {}).get("scores", {})
        if cand not in sc or ref not in sc:
            continue
        ms = [m for m in metrics if m in sc[cand] and m in sc[ref]]
        ev = compare(f"{split}-clips", path.stem.replace("g", "group ", 1),
                     [sc[cand][m] for m in ms], [sc[ref][m] for m in ms], ms)
        if ev.n:
            out.append(ev)
    return out


def overall(evidence: list[Evidence], min_n: int = 6) -> str:
    """``ships`` when new-talker evidence of at least ``min_n`` items is better and nothing is worse; else the
    worst picture."""
    verdicts = {e.verdict for e in evidence}
    if not evidence:
        return "no evidence"
    if "trade" in verdicts or ("better" in verdicts and "worse" in verdicts):
        return "trade"
    if "worse" in verdicts:
        return "worse"
    if any(e.verdict == "better" and e.can_ship(min_n) for e in evidence):
        return "ships"
    return "level"


def judge_slot(slot: str, cand_dir: Path, out: Path, ref: Path, shipped: Path, metrics,
               min_n: int = 6) -> SlotVerdict:
    family, size, group = parse_slot(slot)
    evidence: list[Evidence] = []
    for kind, ref_spec, cand_spec in heldout_sets(out, ref):
        e = heldout_evidence(kind, ref_spec, cand_spec, family, group, metrics)
        evidence += [e] if e else []
    cand_path = cand_dir / slot
    for clips in sorted((out / "clips").glob("g*.json")):
        g = int(clips.stem[1:])
        if group is not None and g != group:
            continue
        if group is None and (shipped / f"plpcnet-{size}-g{g}-ft").exists():
            continue  # the baseline serves no slot of this group: its clips judge the fine-tunes
        # what ships in the slot, as judge_round.sh's clips step picks it: a group's fine-tune, else its baseline
        in_slot = shipped / (slot if group is None else f"plpcnet-{size}-g{g}-ft")
        if not in_slot.exists():
            in_slot = shipped / f"lpcnet-bl-{size}"
        evidence += clip_evidence(clips, str(cand_path), str(in_slot), metrics)
    return SlotVerdict(slot, overall(evidence, min_n), evidence, min_n=min_n)


def compose_release(ref: str, cand: str, shipping: list[str], shipped: Path) -> dict:
    """REF's pooled per-utterance scores with each shipping slot's utterances taken from the candidate reports:
    a fine-tune slot its group's utterances of its family; a baseline slot all of its own and, in its family,
    those of the groups it serves (no shipped fine-tune there, or no group)."""
    old, new, groups = _pooled(ref), _pooled(cand), _groups(cand)
    rel = {s: dict(u) for s, u in old.items()}
    for slot in shipping:
        family, size, group = parse_slot(slot)
        take: list[tuple[str, set | None]] = [(family, None if group is None else {group})]
        if group is None:
            fam = f"plpcnet-{size}"
            take.append((fam, {g for g in groups.values() if g is None or not (shipped / f"{fam}-g{g}-ft").exists()}))
        for system, keep in take:
            if system in rel and system in new:
                take_utterances(rel, new, groups, system, keep)
    return rel


def pair_systems(kind: str, new_scores: dict, new_system: str, old_scores: dict, old_system: str, metrics,
                 only=None, subset: str = "all") -> Evidence | None:
    """``new_system`` in ``new_scores`` against ``old_system`` in ``old_scores``, per utterance both hold (those
    for which ``only(utterance)`` is true, if given); None without such utterances."""
    if new_system not in new_scores or old_system not in old_scores:
        return None
    utts = [u for u in sorted(set(new_scores[new_system]) & set(old_scores[old_system])) if only is None or only(u)]
    if not utts:
        return None
    metrics = [m for m in metrics if any(m in new_scores[new_system][u] for u in utts)]
    return compare(kind, subset, [_column(new_scores, new_system, utts, m) for m in metrics],
                   [_column(old_scores, old_system, utts, m) for m in metrics], metrics)


def family_evidence(kind: str, scores: dict, family: str, baseline: str, metrics) -> Evidence | None:
    """``family`` against ``baseline`` per utterance in one set of pooled scores."""
    return pair_systems(kind, scores, family, scores, baseline, metrics)


def family_change(kind: str, ref_scores: dict, rel_scores: dict, family: str, metrics) -> Evidence | None:
    """``family`` in a composed release against the same family in REF, per utterance."""
    return pair_systems(kind, rel_scores, family, ref_scores, family, metrics)


def _family_verdict(evidence: list[Evidence]) -> str:
    return picture(any(e.better for e in evidence), any(e.worse for e in evidence))


def family_regression(shipping: list[str], fine_tunes: list[str], family: str, out: Path, ref: Path, shipped: Path,
                      metrics) -> tuple[list[Evidence], dict[str, str]]:
    """The family as the shipping slots would release it against the family in REF, on the held-out sets.

    Each fine-tune ships on its own group's utterances; pooled over the family a set of them can still lose a
    score that none loses alone (round 24: groups 0 and 1 together ViSQOL -0.043 on the 55, each alone level).
    When the whole family loses a score, each fine-tune is judged by the family with it alone (beside the other
    sizes' slots and the baseline): it can stay only if that family is better and worse on none. Those are then
    added one by one, the clearest gains alone first (the sum of mean / CI half-width), as long as the family with
    them loses nothing. Returns the evidence of the full release and, per fine-tune held back, the reason."""
    def evidence(slots: list[str]) -> list[Evidence]:
        out_ev = []
        for kind, ref_spec, cand_spec in heldout_sets(out, ref):
            e = family_change(kind, _pooled(ref_spec), compose_release(ref_spec, cand_spec, slots, shipped), family,
                              metrics)
            if e is not None:
                out_ev.append(e)
        return out_ev

    full = evidence(shipping)
    if not fine_tunes or not any(e.worse for e in full):
        return full, {}
    others = [s for s in shipping if s not in fine_tunes]
    lost = ", ".join(f"{m} {e.diffs[m]['mean']:+.3f} ({e.kind})" for e in full for m in e.worse)
    held: dict[str, str] = {}
    gains: dict[str, float] = {}  # how clear a fine-tune's gains are alone: the sum of |mean| / CI half-width
    for f in fine_tunes:
        alone = evidence(others + [f])
        if _family_verdict(alone) != "better":
            held[f] = (f"{family} with all its shipping fine-tunes loses {lost} against REF's; with this one alone "
                       f"{_family_verdict(alone)}")
        else:
            gains[f] = sum(abs(e.diffs[m]["mean"]) / e.diffs[m]["ci95"] for e in alone for m in e.better)
    keep: list[str] = []
    for f in sorted(gains, key=lambda f: (-gains[f], fine_tunes.index(f))):  # the strongest alone first
        if any(e.worse for e in evidence(others + keep + [f])):
            held[f] = (f"{family} with all its shipping fine-tunes loses {lost} against REF's; better alone, but not "
                       f"together with {', '.join(keep)}")
        else:
            keep.append(f)
    return full, held


def release_checks(verdicts: list[SlotVerdict], out: Path, ref: Path, shipped: Path, metrics,
                   regressions: dict[str, list[Evidence]] | None = None) -> list[ReleaseCheck]:
    """Each personalized family with a shipping slot of its size, against its baseline: in REF, in the release
    with every shipping slot, and in that release without the family's shipping fine-tunes (only the new
    baseline of the size). A significant loss that the fine-tunes bring holds them back; one the new baseline
    brings alone (it got better than the family) is noted on the baseline's slot, which still ships. Then each
    family as released against itself in REF (``family_regression``; its evidence in ``regressions[family]``)."""
    shipping = [v.slot for v in verdicts if v.verdict == "ships"]
    checks: list[ReleaseCheck] = []
    if regressions is None:
        regressions = {}
    for size in sorted({parse_slot(s)[1] for s in shipping}):
        family, baseline = f"plpcnet-{size}", f"lpcnet-bl-{size}"
        fine_tunes = [s for s in shipping if parse_slot(s)[1] == size and parse_slot(s)[2] is not None]
        without = [s for s in shipping if s not in fine_tunes]
        for kind, ref_spec, cand_spec in heldout_sets(out, ref):
            before = family_evidence(kind, _pooled(ref_spec), family, baseline, metrics)
            after = family_evidence(kind, compose_release(ref_spec, cand_spec, shipping, shipped), family, baseline,
                                    metrics)
            alone = after  # without shipping fine-tunes the release is the same
            if fine_tunes:
                alone = family_evidence(kind, compose_release(ref_spec, cand_spec, without, shipped), family, baseline,
                                        metrics)
            if before is not None and after is not None:
                checks.append(ReleaseCheck(family, baseline, kind, before, after, alone))
        mine = [c for c in checks if c.family == family]
        held = [f"{m} {c.after.diffs[m]['mean']:+.3f} ({c.kind})" for c in mine for m in c.from_fine_tunes]
        noted = [f"{m} {c.after.diffs[m]['mean']:+.3f} ({c.kind})" for c in mine for m in c.from_baseline]
        regressions[family], held_alone = family_regression(shipping, fine_tunes, family, out, ref, shipped, metrics)
        for v in verdicts:
            if v.verdict != "ships" or parse_slot(v.slot)[1] != size:
                continue
            if held and v.slot in fine_tunes:
                v.verdict, v.held = "held back", f"{family} below {baseline}: {', '.join(held)}"
            elif v.slot in held_alone:
                v.verdict, v.held = "held back", held_alone[v.slot]
            elif noted and v.slot == baseline:
                v.note = f"with it {family} falls below {baseline}: {', '.join(noted)}; reported, not held back"
    return checks


def _moved(e: Evidence, metrics: list[str]) -> str:
    """``metric +0.012, ...`` for the metrics of ``e`` named, or a dash."""
    return ", ".join(f"{m} {e.diffs[m]['mean']:+.3f}" for m in metrics) or "–"


def _firm(v: SlotVerdict) -> str:
    """The slot table's last cell: the gains that hold, else whether the ship is replicated or narrow."""
    if v.strength == "narrow":
        return "none: **narrow** (each gain it ships on is a lone edge among the metrics of one evidence)"
    if v.strength == "replicated":
        return f"none alone; **replicated**: {', '.join(v.replicated_gains)} gains in two or more new-talker evidences"
    return ", ".join(f"{m} {e.diffs[m]['mean']:+.3f} ({e.kind})" for e, m in v.firm_gains) or "–"


def markdown(verdicts: list[SlotVerdict], min_n: int = 6, checks: list[ReleaseCheck] = (),
             regressions: dict[str, list[Evidence]] | None = None) -> str:
    lines = ["Candidate against what ships in its slot: metrics whose 95 % CI excludes zero.", "",
             "| slot | evidence | subset | n | better | worse | evidence verdict | holds under Holm |",
             "|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        for e in v.evidence:
            note = " (too few to ship)" if e.verdict == "better" and e.n < min_n else ""
            lines.append(f"| {v.slot} | {e.kind} | {e.subset} | {e.n} | {_moved(e, e.better)} | {_moved(e, e.worse)} "
                         f"| {e.verdict}{note} | {', '.join(e.holds) or '–'} |")
        if not v.evidence:
            lines.append(f"| {v.slot} | – | – | 0 | – | – | no evidence |")
    if checks:
        lines += ["", "Release check: each family against its baseline, in the release (REF) and in the release with "
                  "the shipping slots; significant differences. New losses that the family's shipping fine-tunes bring "
                  "hold them back; those the new baseline brings alone are reported.", "",
                  "| family | against | evidence | n | worse in REF | better with the slots | worse with the slots "
                  "| new losses: from the fine-tunes | from the new baseline |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {c.family} | {c.baseline} | {c.kind} | {c.after.n} | {_moved(c.before, c.before.worse)} | "
                  f"{_moved(c.after, c.after.better)} | {_moved(c.after, c.after.worse)} | "
                  f"{', '.join(c.from_fine_tunes) or '–'} | {', '.join(c.from_baseline) or '–'} |" for c in checks]
    if regressions and any(regressions.values()):
        lines += ["", "Each family as the shipping slots would release it, against the same family in REF; significant "
                  "differences. A loss here holds back the fine-tunes that are not better on their own.", "",
                  "| family | evidence | n | better | worse | verdict |", "|---|---|---|---|---|---|"]
        lines += [f"| {family} | {e.kind} | {e.n} | {_moved(e, e.better)} | {_moved(e, e.worse)} | {e.verdict} |"
                  for family, evidence in regressions.items() for e in evidence]
    lines += ["", "| slot | verdict | a gain on new talkers that holds under Holm's correction |", "|---|---|---|"] + [
        f"| {v.slot} | **{v.verdict}**{' (' + v.held + ')' if v.held else ''}{' (' + v.note + ')' if v.note else ''} "
        f"| {_firm(v)} |" for v in verdicts]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidates", type=Path, help="CANDRUNS of judge_round.sh: one entry per slot")
    p.add_argument("out", type=Path, help="OUT of judge_round.sh (ev/, clips/)")
    p.add_argument("ref", type=Path, help="the release's per-utterance scores: REF/{s0,s1,s2,55}.json")
    p.add_argument("--shipped", type=Path, default=Path("runs/shipped"), help="shipped runs under slot names")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    p.add_argument("--min-n", type=int, default=6, help="fewest items whose gain can ship a decoder (default 6)")
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    if not a.candidates.is_dir():
        p.error(f"no candidate folder {a.candidates}")
    slots = sorted(x.name for x in a.candidates.iterdir())
    bad = [s for s in slots if not SLOT_RE.match(s)]
    if bad:
        p.error(f"not slot names in {a.candidates}: {', '.join(bad)}")
    verdicts = [judge_slot(s, a.candidates, a.out, a.ref, a.shipped, tuple(a.metrics), a.min_n) for s in slots]
    regressions: dict[str, list[Evidence]] = {}
    checks = release_checks(verdicts, a.out, a.ref, a.shipped, tuple(a.metrics), regressions)
    text = markdown(verdicts, a.min_n, checks, regressions)
    show_table(text, a.markdown)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        fam = lambda slot: f"plpcnet-{parse_slot(slot)[1]}"  # noqa: E731  (a slot's size's personalized family)
        a.json.write_text(json.dumps([{"slot": v.slot, "verdict": v.verdict, "held": v.held, "note": v.note,
                                       "strength": v.strength,
                                       "evidence": [asdict(e) | {"verdict": e.verdict} for e in v.evidence],
                                       "release_checks": [{"family": c.family, "against": c.baseline, "kind": c.kind,
                                                           "before": asdict(c.before), "after": asdict(c.after),
                                                           "baseline_only": (asdict(c.baseline_only)
                                                                             if c.baseline_only else None),
                                                           "new_losses": c.new_losses,
                                                           "from_fine_tunes": c.from_fine_tunes,
                                                           "from_baseline": c.from_baseline}
                                                          for c in checks if c.family == fam(v.slot)],
                                       "family_regression": [asdict(e) | {"verdict": e.verdict}
                                                             for e in regressions.get(fam(v.slot), [])]}
                                      for v in verdicts], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
