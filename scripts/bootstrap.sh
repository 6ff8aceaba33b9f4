#!/usr/bin/env bash
# Installs what the project needs on a fresh machine, idempotently:
# system packages (Mosquitto, socat) when missing and we may install them,
# then a virtual environment in .venv with the project and its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto mosquitto-clients)
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
# The city tier (huimin city, its tests): a NATS cluster with JetStream.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/bin/nats-server ] || need_apt+=(nats-server)
# pyscard builds from source: it needs the PC/SC headers and swig; the tests
# also run the real daemon with the virtual reader driver.
[ -f /usr/include/PCSC/winscard.h ] || need_apt+=(libpcsclite-dev)
command -v swig >/dev/null 2>&1 || need_apt+=(swig)
# ... and a C compiler with the C library's headers and Python's own headers:
# a minimal Debian or Raspberry Pi OS Lite has none of them.
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
[ -f /usr/include/stdio.h ] || need_apt+=(libc6-dev)
python3 -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || need_apt+=(python3-dev)
command -v pcscd >/dev/null 2>&1 || [ -x /usr/sbin/pcscd ] || need_apt+=(pcscd)
[ -f /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || need_apt+=(vsmartcard-vpcd)
# --test: also what the test suite drives (headless Chromium for the web pages).
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
  # A CJK font: Chinese on the pages and the kiosk's screen, not boxes, in screenshots.
  [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
  # systemd-analyze verify, for the units in deploy/systemd (nothing is started).
  command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "bootstrap: installing ${need_apt[*]} (apt)" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install ${need_apt[*]} (no permission to do it here); continuing" >&2
  fi
fi

stamp=.venv/.huimin-installed
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv/bin/python -m pip install -q -e ".[dev]" > .venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "bootstrap: pip install failed (log above)" >&2
    exit 1
  fi
  touch "$stamp"
fi
