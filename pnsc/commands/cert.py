"""``pnsc cert OUT``: make a self-signed certificate for ``wss://`` calls on a LAN.

Writes ``OUT.crt`` and ``OUT.key`` (EC P-256, key readable by the owner only) with the given host
names / IP addresses as subject alternative names, and prints the certificate's SHA-256
fingerprint. The receiver serves with ``--cert OUT.crt --key OUT.key``; the sender pins it with
``--cert OUT.crt`` (copy the .crt, never the .key) and optionally ``--pin FINGERPRINT``.
Needs the ``openssl`` program.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("cert", help="make a self-signed certificate for wss://", description=__doc__)
    p.add_argument("out", metavar="OUT", help="output prefix: writes OUT.crt and OUT.key")
    p.add_argument("--host", action="append", default=None, metavar="NAME_OR_IP",
                   help="host name or IP the receiver is reached at (repeatable; default localhost, 127.0.0.1)")
    p.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=run)


def fingerprint(crt: Path) -> str:
    import hashlib
    import ssl

    der = ssl.PEM_cert_to_DER_cert(crt.read_text())
    return hashlib.sha256(der).hexdigest()


def run(args) -> int:
    from pnsc.cli import CommandError

    openssl = shutil.which("openssl")
    if openssl is None:
        raise CommandError("the openssl program is needed (apt-get install openssl)")
    if not 1 <= args.days <= 36500:
        raise CommandError(f"--days must be 1..36500, got {args.days}")
    crt, key = Path(f"{args.out}.crt"), Path(f"{args.out}.key")
    for p in (crt, key):
        if p.exists() and not args.force:
            raise CommandError(f"{p} exists (use --force to overwrite)")
    if not crt.parent.is_dir():
        raise CommandError(f"no such folder: {crt.parent}")
    hosts = args.host or ["localhost", "127.0.0.1"]
    san = []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            san.append(f"IP:{h}")
        except ValueError:
            if not h or any(c in h for c in ",= /\\"):
                raise CommandError(f"not a host name or IP address: {h!r}") from None
            san.append(f"DNS:{h}")
    cmd = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(key), "-out", str(crt), "-days", str(args.days), "-subj", f"/CN={hosts[0]}",
           "-addext", "subjectAltName=" + ",".join(san)]
    old = os.umask(0o077)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        os.umask(old)
    if r.returncode != 0:
        raise CommandError(f"openssl failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    os.chmod(key, 0o600)
    print(f"wrote {crt} and {key}")
    print(f"sha256 fingerprint: {fingerprint(crt)}")
    print(f"receiver: pnsc receive --listen 0.0.0.0:PORT --cert {crt} --key {key}", file=sys.stderr)
    print(f"sender:   pnsc send --to wss://{hosts[0]}:PORT --cert {crt}", file=sys.stderr)
    return 0
