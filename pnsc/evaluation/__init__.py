"""Objective evaluation of pnsc against peer codecs (``pnsc eval``).

Modules, one job each: ``align`` (delay compensation), ``metrics`` (PESQ, STOI, ViSQOL, DNSMOS,
speaker similarity), ``stats`` (means, confidence intervals, paired differences), ``peers``
(codec2 / Opus through the Debian command-line tools), ``opus`` (Ogg demuxing and libopus decoding
with lost packets), ``systems`` (pnsc encode -> decode with a pluggable decoder backend), ``refs``
(reference utterances), ``loss`` (packet-loss patterns and curves), ``report`` (HTML) and ``runner``
(the whole evaluation).  The scoring tools come from the ``eval`` extra: ``pip install 'pnsc[eval]'``.
"""
