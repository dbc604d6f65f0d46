#!/usr/bin/env python3
"""Serve a personalized decoder slot with the generic baseline of its size, when no fine-tune of that group
decodes better than the baseline.

    python scripts/fallback_decoders.py plpcnet-l-g3 --reason "both fine-tunes decoded worse ..." [--models-dir models]

The manifest entry of ``plpcnet-{s,l}-gG`` is replaced by one that points at ``lpcnet-bl-{s,l}``'s files
(same sha256; nothing is copied), with ``variant`` ``baseline-fallback``, ``serves_as`` the baseline's name and
the reason as its training note. The sender's group flag still selects it, so a talker of that group is
decoded by the best decoder there is for them; the manifest (``variant``, ``serves_as``, the note) and
``pnsc decode`` (``plpcnet-l-g3 (served by lpcnet-bl-l)``) say that this slot is not personalized. The group's
old decoder files are deleted when no entry refers to them any more. Exit status 2 with one line on a bad name
or a missing baseline.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.training.lpcnet.fallback import fallback_entry  # noqa: E402

NAME_RE = re.compile(r"^plpcnet-(?P<size>[sl])-g(?P<g>\d+)$")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+", help="personalized decoder names, e.g. plpcnet-l-g3")
    p.add_argument("--reason", required=True, help="why no fine-tune serves this group (recorded in the entry)")
    p.add_argument("--models-dir", type=Path, default=REPO / "models")
    a = p.parse_args(argv)
    from pnsc.receiver.reference_decoder import DecoderNotFound, grouping_hashes
    from pnsc.receiver.runtime.model import locate

    man_path = a.models_dir / "manifest.json"
    if not man_path.is_file():
        p.error(f"no manifest at {man_path}")
    man = json.loads(man_path.read_text())
    models = man["models"]
    grouping = grouping_hashes(a.models_dir)
    for name in a.names:
        m = NAME_RE.match(name)
        if not m:
            p.error(f"{name!r} is not a personalized decoder name (plpcnet-s-gG or plpcnet-l-gG)")
        base_name = f"lpcnet-bl-{m.group('size')}"
        base = next((e for e in models if e.get("kind") == "decoder" and e.get("name") == base_name), None)
        if base is None:
            p.error(f"no {base_name} in {man_path}: a fallback needs the baseline's entry")
        try:  # the loader's own checks: both files present and matching the manifest's sha256
            locate(base_name, None, a.models_dir, verify=True)
        except DecoderNotFound as exc:
            p.error(f"{base_name}: a file is missing or differs from the manifest: {exc}")
        old = next((e for e in models if e.get("kind") == "decoder" and e.get("name") == name), None)
        entry = fallback_entry(base, name, int(m.group("g")), a.reason, grouping)
        models[:] = [e for e in models if e is not old] + [entry]
        in_use = {rel for e in models for rel in (e.get("files") or {}).values()}
        for rel in (old or {}).get("files", {}).values():
            if rel not in in_use and (a.models_dir / rel).is_file():
                (a.models_dir / rel).unlink()
                print(f"removed {rel} (no entry uses it)")
        print(f"{name}: served by {base_name} ({a.reason})")
    man_path.write_text(json.dumps(man, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
