#!/usr/bin/env bash
# Shared set-up of ./scripts/run and ./scripts/test: installs whatever is missing (system
# packages for PostgreSQL + PostGIS, the Python venv with the project) and is quick when
# nothing is. Works as root (CI) or as a user with sudo, on Debian or Ubuntu.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

APT_UPDATED=0
apt_install() {
  local missing
  missing=$(apt_missing "$@")
  [ -z "$missing" ] && return 0
  say "installing system packages: $(echo $missing)"
  if [ "$APT_UPDATED" = 0 ]; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  # shellcheck disable=SC2086
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
}

pg_major() {
  # The newest PostgreSQL server installed from the OS packages.
  ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -n 1
}

PYTHON=python3
python_ok() { "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

setup_python_interpreter() {
  command -v python3 >/dev/null || apt_install python3
  python_ok python3 && return 0
  # Debian 12 / Ubuntu 24.04 ship 3.11+ and need only the venv module; older Ubuntu has 3.11
  # as a separate package.
  if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    apt_install python3-venv
  else
    apt_install python3.11 python3.11-venv
    PYTHON=python3.11
  fi
  python_ok "$PYTHON" || { echo "need Python >= 3.11 with venv" >&2; return 1; }
}

setup_system() {
  setup_python_interpreter
  if [ -z "$(pg_major)" ] || [ ! -x "/usr/lib/postgresql/$(pg_major)/bin/initdb" ]; then
    apt_install postgresql
  fi
  apt_install "postgresql-$(pg_major)-postgis-3"
}

setup_python() {
  local stamp="$VENV/.installed" want
  # The compiled part (spatial/_clipper: Clipper2) is rebuilt when its sources change too.
  want=$(cat pyproject.toml setup.py spatial/_clipper.cpp third_party/clipper2/src/*.cpp \
    third_party/clipper2/include/clipper2/*.h | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/territory" ] &&
    compgen -G "spatial/_clipper*.so" >/dev/null; then
    return 0
  fi
  say "installing the project into $VENV"
  command -v g++ >/dev/null || apt_install g++
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local log="$VENV/pip.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
    "$VENV/bin/python" -m pip install -e '.[dev]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "pip install failed; the whole log is in $log" >&2
    return 1
  fi
  echo "$want" >"$stamp"
}

setup_assets() {
  # Front-end assets the service serves itself (Swagger UI for /docs), from the npm registry.
  command -v npm >/dev/null || apt_install nodejs npm
  local stamp="$ROOT/node_modules/.installed" want
  want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  say "installing front-end assets (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
}

setup_browser() {
  # Pages are tested in a real headless browser: Debian's chromium. Ubuntu has no such deb:
  # its chromium-browser package installs the snap, which needs snapd.
  if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    return 0
  fi
  local distro
  distro=$(. /etc/os-release 2>/dev/null && echo "${ID:-}")
  if [ "$distro" = ubuntu ]; then
    apt_install chromium-browser
  else
    apt_install chromium
  fi
}

setup_gis_clients() {
  # GDAL's command-line tools (ogrinfo): the tests read the OGC API through GDAL's driver,
  # as a GIS analyst's QGIS or ogr2ogr would.
  command -v ogrinfo >/dev/null || apt_install gdal-bin
}

setup_all() {
  setup_system
  setup_python
  setup_assets
}
