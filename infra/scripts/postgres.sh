#!/usr/bin/env bash
# Local PostgreSQL from Debian's packages, in a data directory of this project's own.
#   postgres.sh start   start it unless something listens on POSTGRES_PORT; create role and database
#   postgres.sh stop    stop it if this project started it
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_STATE="$STATE_DIR/postgres"
PG_DATA="$PG_STATE/data"
DB_USER="${POSTGRES_USER:-csp}"
DB_PASSWORD="${POSTGRES_PASSWORD:-csp}"
DB_NAME="${POSTGRES_DB:-csp_triage}"

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [[ -x $d/initdb ]] && { echo "$d"; return 0; }; done
  if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return 0; fi
  return 1
}

# PostgreSQL refuses to run as root: as root, run its tools as the 'postgres' user.
as_pg() {
  # (from /, which 'postgres' can always enter, whatever the checkout's permissions)
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

start() {
  if port_open "$POSTGRES_PORT"; then
    say "PostgreSQL: something already listens on 127.0.0.1:$POSTGRES_PORT; using it (DATABASE_URL)"
    return 0
  fi
  local bin
  bin=$(pg_bindir) || { need_root_or_say "PostgreSQL" "postgresql"; bin=$(pg_bindir); }
  mkdir -p "$PG_STATE"
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "the 'postgres' system user is missing (apt-get install postgresql creates it)"
    chown postgres "$PG_STATE"
    # The server runs as 'postgres', which may not reach a checkout under /root: then its data
    # lives under /var/lib/csp-triage, one directory per checkout, linked from the state dir.
    if ! runuser -u postgres -- test -w "$PG_STATE"; then
      local outside="/var/lib/csp-triage/postgres-$(printf '%s' "$REPO_ROOT" | md5sum | cut -c1-10)"
      mkdir -p "$outside"; chown postgres "$outside"; chmod 755 /var/lib/csp-triage
      PG_STATE="$outside"; PG_DATA="$PG_STATE/data"
      ln -sfn "$PG_STATE" "$STATE_DIR/postgres-data-link"
    fi
  fi
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    say "initialising a PostgreSQL cluster in $PG_DATA (first run only)"
    local pwfile="$PG_STATE/.pw"
    printf '%s\n' "$DB_PASSWORD" >"$pwfile"; chmod 644 "$pwfile"
    as_pg "$bin/initdb" -D "$PG_DATA" -U "$DB_USER" --pwfile="$pwfile" -A scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$PG_STATE/initdb.log" 2>&1 \
      || { cat "$PG_STATE/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  # Under load every service writes each alert several times: more cache than the 128 MB default (and WAL
  # buffers with it), checkpoints less often and their full-page images compressed. 8-10% more alerts a
  # second through the pipeline in A/B runs of `bench` (#15); POSTGRES_TUNING replaces these.
  local PG_TUNING="${POSTGRES_TUNING--c shared_buffers=512MB -c max_wal_size=4GB -c wal_compression=lz4}"
  say "starting PostgreSQL on 127.0.0.1:$POSTGRES_PORT (log: $PG_STATE/postgres.log)"
  as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_STATE/postgres.log" -w -t 60 \
    -o "-p $POSTGRES_PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=${POSTGRES_FSYNC:-on} $PG_TUNING" \
    start >/dev/null || { tail -n 20 "$PG_STATE/postgres.log" >&2; die "PostgreSQL did not start"; }
  mark_started postgres
  if ! PGPASSWORD="$DB_PASSWORD" "$bin/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" -U "$DB_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
    say "creating database $DB_NAME"
    PGPASSWORD="$DB_PASSWORD" "$bin/createdb" -h 127.0.0.1 -p "$POSTGRES_PORT" -U "$DB_USER" "$DB_NAME"
  fi
}

stop() {
  if started_by_us postgres; then
    [[ -L $STATE_DIR/postgres-data-link ]] && PG_DATA="$(readlink "$STATE_DIR/postgres-data-link")/data"
    local bin; bin=$(pg_bindir)
    say "stopping PostgreSQL"
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null || true
    rm -f "$STATE_DIR/postgres.started-by-us"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: postgres.sh start|stop" ;;
esac
