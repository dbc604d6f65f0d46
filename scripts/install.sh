#!/usr/bin/env bash
# Install pnsc into .venv on Debian/Ubuntu: the system packages it needs (a C compiler and Python headers
# for the decoder runtime's C extension, PortAudio for sound devices, libsndfile for audio files), then the
# package itself. Extras: PNSC_EXTRAS="train,test,eval" bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="gcc python3-dev python3-venv libportaudio2 libsndfile1"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
  echo "pnsc install: installing$missing with apt-get (the decoder runtime is a C extension built here)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${PNSC_EXTRAS:+[$PNSC_EXTRAS]}"
.venv/bin/python -c "from pnsc.receiver.runtime import ckernel; print('pnsc install: decoder runtime built, kernels:', ', '.join(ckernel.cpu_kernels()))" 2>/dev/null \
  || echo "pnsc install: done"
