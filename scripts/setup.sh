#!/usr/bin/env bash
# Install everything Caretaker needs on Debian 12 or 13, as root. Idempotent: a second run
# with everything present only checks and finishes in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages): sudo $0"
[ -r /etc/os-release ] || die "not a Debian system (no /etc/os-release); install PostgreSQL 15+ with TimescaleDB, Mosquitto and Python 3.11+ yourself, then set CARETAKER_DATABASE_URL and CARETAKER_MQTT_URL"
. /etc/os-release
case "${ID:-}:${VERSION_ID:-}" in
  debian:12) PG=15 ;;
  debian:13) PG=17 ;;
  *) die "unsupported system ${PRETTY_NAME:-unknown}: this script supports Debian 12 and 13. Elsewhere install PostgreSQL with the TimescaleDB extension, Mosquitto and Python 3.11+, then point Caretaker at them with CARETAKER_DATABASE_URL and CARETAKER_MQTT_URL" ;;
esac

missing=()
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || missing+=("$1"); }
for p in "postgresql-$PG" "postgresql-client-$PG" mosquitto mosquitto-clients python3 python3-venv python3-dev gcc; do need "$p"; done
# Reports: WeasyPrint lays PDFs out with Pango; Chinese text needs a CJK font on the machine.
# libharfbuzz-subset0 lets it subset the CJK font quickly (19 s → 3 s for a report).
for p in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk; do need "$p"; done
# Pages are tested in a real headless browser: Debian's chromium (driven by Playwright).
need chromium
TS_PKG="postgresql-$PG-timescaledb"
if [ "$PG" = 17 ]; then need "$TS_PKG"; else
  for p in "postgresql-server-dev-$PG" cmake dpkg-dev make libssl-dev libkrb5-dev; do need "$p"; done
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a host-wide mosquitto; Caretaker runs its own on its own port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled mosquitto >/dev/null 2>&1; then
  systemctl disable --now mosquitto >/dev/null 2>&1 || true
elif [ -f /run/mosquitto/mosquitto.pid ] && [ -x /etc/init.d/mosquitto ]; then
  # no systemd (a container): the package's init script started it on port 1883
  /etc/init.d/mosquitto stop >/dev/null 2>&1 || true
  update-rc.d mosquitto disable >/dev/null 2>&1 || true
fi

PGBIN=/usr/lib/postgresql/$PG/bin
if [ ! -f "$($PGBIN/pg_config --pkglibdir)/timescaledb.so" ]; then
  # Debian 12 has no TimescaleDB package: build Debian 13's source package (Apache-2
  # edition) against the installed server, from a private deb-src list so the host's apt
  # sources stay as they are.
  say "building TimescaleDB for PostgreSQL $PG from Debian's source package (about a minute)"
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$URI" ] || URI=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  [ -n "$URI" ] || die "no Debian archive found in the apt sources to fetch the timescaledb source package from"
  mkdir -p "$WORK/lists/partial"
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$URI" > "$WORK/src.sources"
  APTOPT=(-o "Dir::Etc::SourceList=$WORK/src.sources" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$WORK/lists")
  apt-get "${APTOPT[@]}" update -qq
  (cd "$WORK" && apt-get "${APTOPT[@]}" source --download-only -qq timescaledb >/dev/null 2>&1)
  (cd "$WORK" && dpkg-source -x --no-check timescaledb_*.dsc src >/dev/null)
  cmake -S "$WORK/src" -B "$WORK/build" -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
        -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$PGBIN/pg_config" >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log"; die "cmake failed"; }
  make -C "$WORK/build" -j"$(nproc)" >"$WORK/make.log" 2>&1 || { tail -50 "$WORK/make.log"; die "TimescaleDB build failed"; }
  make -C "$WORK/build" install >"$WORK/install.log" 2>&1 || { tail -50 "$WORK/install.log"; die "TimescaleDB install failed"; }
fi

# Python packages come from requirements.lock (every version pinned, every file hashed), so a
# new release upstream cannot change what a fresh machine installs. When the lock changes the
# venv is built again from scratch, so nothing the lock no longer names stays behind.
VENV="$ROOT/.venv"
LOCK_STAMP="$VENV/.lock-$(sha256sum requirements.lock | cut -c1-16)"
if [ ! -f "$LOCK_STAMP" ]; then
  if [ -e "$VENV" ]; then say "requirements.lock changed: building .venv again"; rm -rf "$VENV"
  else say "creating the virtual environment in .venv from requirements.lock"; fi
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r requirements.lock \
    >"$VENV/pip-install.log" 2>&1 || { tail -30 "$VENV/pip-install.log"; rm -rf "$VENV"; die "pip install from requirements.lock failed"; }
  touch "$LOCK_STAMP"
fi
# The project itself (entry point, packages), without dependencies: those are the lock's.
PROJECT_STAMP="$VENV/.project-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$PROJECT_STAMP" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . >>"$VENV/pip-install.log" 2>&1 \
    || { tail -30 "$VENV/pip-install.log"; die "pip install -e . failed"; }
  rm -f "$VENV"/.project-* "$VENV"/.installed-*; touch "$PROJECT_STAMP"
fi
say "ready: PostgreSQL $PG with TimescaleDB, Mosquitto, .venv (run: .venv/bin/caretaker --help)"
