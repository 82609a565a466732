#!/usr/bin/env bash
# infra.sh up|down|browser: the local infrastructure of `make run` and `make test`; `browser` installs
# the real browser the dashboard's tests drive (Debian's chromium: Playwright downloads no browser).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

up() {
  bash "$REPO_ROOT/infra/scripts/kafka.sh" start
  bash "$REPO_ROOT/infra/scripts/postgres.sh" start
  bash "$REPO_ROOT/infra/scripts/redis.sh" start
  export DATABASE_URL="${DATABASE_URL:-postgresql://csp:csp@127.0.0.1:$POSTGRES_PORT/csp_triage}"
  export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
  say "applying database migrations"
  "$VENV/bin/python" -m shared.db migrate
  say "creating Kafka topics"
  "$VENV/bin/python" -m shared.kafka ensure-topics
}

down() {
  bash "$REPO_ROOT/infra/scripts/redis.sh" stop
  bash "$REPO_ROOT/infra/scripts/postgres.sh" stop
  bash "$REPO_ROOT/infra/scripts/kafka.sh" stop
}

browser() {
  local chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
  [[ -x $chromium ]] || need_root_or_say "Chromium (the dashboard's browser tests)" "chromium"
  [[ -x $chromium ]] || die "no Chromium at $chromium; set CHROMIUM_PATH to one"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  browser) browser ;;
  *) die "usage: infra.sh up|down|browser" ;;
esac
