#!/usr/bin/env bash
# Local Redis from Debian's packages.
#   redis.sh start   start it unless something listens on REDIS_PORT
#   redis.sh stop    stop it if this project started it
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_STATE="$STATE_DIR/redis"
PIDFILE="$REDIS_STATE/redis.pid"

start() {
  if port_open "$REDIS_PORT"; then
    say "Redis: something already listens on 127.0.0.1:$REDIS_PORT; using it (REDIS_URL)"
    return 0
  fi
  command -v redis-server >/dev/null || need_root_or_say "Redis" "redis-server"
  mkdir -p "$REDIS_STATE"
  say "starting Redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_STATE/redis.log)"
  # Redis holds derived state only (the scoring service rebuilds it), so an append-only
  # file is a convenience for quick restarts, not the source of truth.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_STATE" \
    --appendonly yes --daemonize yes --pidfile "$PIDFILE" --logfile "$REDIS_STATE/redis.log" \
    --save "" >/dev/null
  mark_started redis
  wait_for_port "$REDIS_PORT" Redis 30 || die "Redis did not start (log: $REDIS_STATE/redis.log)"
}

stop() {
  if started_by_us redis; then
    stop_pidfile Redis "$PIDFILE"
    rm -f "$STATE_DIR/redis.started-by-us"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: redis.sh start|stop" ;;
esac
