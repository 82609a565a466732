# Shared helpers for the infra scripts. Sourced, never run.
# Everything the local stack writes lives under STATE_DIR (git-ignored); downloaded jars live
# under CACHE_DIR, outside the repository, so that every clone shares one download.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${STATE_DIR:-$REPO_ROOT/.run}"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/csp-triage}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
POSTGRES_PORT="${POSTGRES_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
VENV="${VENV:-$REPO_ROOT/.venv}"
mkdir -p "$STATE_DIR"

say()  { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33m!!\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for_port PORT NAME SECONDS [PIDFILE]: waits, printing a dot a second; fails early if the
# process in PIDFILE dies.
wait_for_port() {
  local port=$1 name=$2 seconds=$3 pidfile=${4:-} i
  printf '    waiting for %s on port %s ' "$name" "$port"
  for ((i = 0; i < seconds; i++)); do
    if port_open "$port"; then printf ' ready (%ss)\n' "$i"; return 0; fi
    if [[ -n $pidfile && -f $pidfile ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      printf ' died\n'; return 1
    fi
    printf '.'; sleep 1
  done
  printf ' timed out after %ss\n' "$seconds"; return 1
}

# Marks that this project started a component, so `make stop` stops only what it started.
mark_started() { touch "$STATE_DIR/$1.started-by-us"; }
started_by_us() { [[ -f $STATE_DIR/$1.started-by-us ]]; }

# stop_pidfile NAME PIDFILE: TERM, wait up to 30 s, then KILL.
stop_pidfile() {
  local name=$1 pidfile=$2 pid i
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

need_root_or_say() {
  # $1: what is missing, $2: the Debian packages that provide it
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing $2 from Debian's packages (first run only)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2 >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2 >/dev/null
    fi
  else
    die "$1 is missing. Install it (Debian/Ubuntu: sudo apt-get install $2), or point the services at an existing one with the environment variables in README.md."
  fi
}
