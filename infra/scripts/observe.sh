#!/usr/bin/env bash
# observe.sh: Prometheus from Debian's package, scraping the services of `make run` with the alert
# rules of infra/observability (issue #16).
#   observe.sh install      install Debian's prometheus package (prometheus and promtool) if missing
#   observe.sh render DIR   write the configuration Prometheus runs with into DIR (ports from the environment)
#   observe.sh run          check the configuration and rules, then run Prometheus in the foreground
#                           (`make observe`); Ctrl-C stops it. Its data stays in .run/prometheus/data.
# Environment: PROMETHEUS_PORT (default 9090; when unset and 9090 is taken, the next free port),
# PROMETHEUS_RETENTION (default 7d), and the services' INGEST_PORT, READ_API_PORT,
# RESPONSE_TIME_PORT, NOTIFIER_PORT (as `make run` reads them).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OBS_DIR="$REPO_ROOT/infra/observability"
PROM_STATE="$STATE_DIR/prometheus"
INGEST_PORT="${INGEST_PORT:-8081}"
READ_API_PORT="${READ_API_PORT:-8082}"
RESPONSE_TIME_PORT="${RESPONSE_TIME_PORT:-8083}"
NOTIFIER_PORT="${NOTIFIER_PORT:-8084}"
PROMETHEUS_RETENTION="${PROMETHEUS_RETENTION:-7d}"

install() {
  # --no-install-recommends: the package recommends prometheus-node-exporter, a second daemon this
  # project has no use for. (On a machine with systemd, the package also enables its own
  # prometheus.service on 9090; `run` then takes the next free port unless PROMETHEUS_PORT says.)
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    need_root_or_say "Prometheus (\`make observe\` and the alert rules' tests)" "--no-install-recommends prometheus"
  fi
  command -v promtool >/dev/null || die "no promtool on PATH after installing Debian's prometheus package"
}

# The port to listen on: PROMETHEUS_PORT exactly when set (busy: fail), else 9090 or the next free
# one (never Kafka's two ports, which may simply not be up yet).
pick_port() {
  if [[ -n ${PROMETHEUS_PORT:-} ]]; then
    port_open "$PROMETHEUS_PORT" && die "something already listens on 127.0.0.1:$PROMETHEUS_PORT (PROMETHEUS_PORT)"
    echo "$PROMETHEUS_PORT"; return 0
  fi
  local port
  for ((port = 9090; port < 9190; port++)); do
    [[ $port == "$KAFKA_PORT" || $port == "$KAFKA_CONTROLLER_PORT" ]] && continue
    port_open "$port" || { echo "$port"; return 0; }
  done
  die "no free port in 9090-9189; set PROMETHEUS_PORT"
}

# render DIR PORT: infra/observability/prometheus.yml with this machine's ports, its rule files
# named by absolute path (Prometheus reads rule_files relative to the configuration's directory).
render() {
  local dir=$1 port=${2:-9090}
  mkdir -p "$dir"
  sed -e "s|127\.0\.0\.1:8081\"|127.0.0.1:$INGEST_PORT\"|" \
      -e "s|127\.0\.0\.1:8082\"|127.0.0.1:$READ_API_PORT\"|" \
      -e "s|127\.0\.0\.1:8083\"|127.0.0.1:$RESPONSE_TIME_PORT\"|" \
      -e "s|127\.0\.0\.1:8084\"|127.0.0.1:$NOTIFIER_PORT\"|" \
      -e "s|127\.0\.0\.1:9090\"|127.0.0.1:$port\"|" \
      -e "s|^\(\s*- \)\"rules/|\1\"$OBS_DIR/rules/|" \
      "$OBS_DIR/prometheus.yml" >"$dir/prometheus.yml"
}

run() {
  install
  local port
  port=$(pick_port)
  render "$PROM_STATE" "$port"
  promtool check config "$PROM_STATE/prometheus.yml" >/dev/null \
    || { promtool check config "$PROM_STATE/prometheus.yml" >&2; die "the Prometheus configuration or its rules are invalid"; }
  mkdir -p "$PROM_STATE/data"
  say "Prometheus on http://127.0.0.1:$port (targets: /targets, alerts: /alerts; data: $PROM_STATE/data)"
  say "scraping ingest :$INGEST_PORT, scoring :$READ_API_PORT, response-time :$RESPONSE_TIME_PORT, notifier :$NOTIFIER_PORT; Ctrl-C stops it"
  # exec: Prometheus itself gets Ctrl-C and SIGTERM and shuts down cleanly (its TSDB is flushed).
  # --web.enable-lifecycle: `curl -X POST 127.0.0.1:$port/-/reload` re-reads edited rules; it
  # listens on 127.0.0.1 only.
  exec prometheus \
    --config.file="$PROM_STATE/prometheus.yml" \
    --storage.tsdb.path="$PROM_STATE/data" \
    --storage.tsdb.retention.time="$PROMETHEUS_RETENTION" \
    --web.listen-address="127.0.0.1:$port" \
    --web.enable-lifecycle
}

case "${1:-}" in
  install) install ;;
  render) [[ -n ${2:-} ]] || die "usage: observe.sh render DIR"; render "$2" "${PROMETHEUS_PORT:-9090}" ;;
  run) run ;;
  *) die "usage: observe.sh install|render DIR|run" ;;
esac
