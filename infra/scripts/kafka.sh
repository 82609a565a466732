#!/usr/bin/env bash
# Local Apache Kafka 4.x broker in KRaft combined mode, from Maven Central's jars.
#   kafka.sh start   fetch jars once, format storage once, start the broker unless the port is taken
#   kafka.sh stop    stop the broker if this project started it
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_STATE="$STATE_DIR/kafka"
PIDFILE="$KAFKA_STATE/kafka.pid"

fetch_jars() {
  if [[ -f $KAFKA_HOME/.complete ]]; then return 0; fi
  command -v java >/dev/null || need_root_or_say "Java 17" "openjdk-17-jre-headless"
  command -v mvn >/dev/null || need_root_or_say "Maven" "maven"
  say "fetching Apache Kafka $KAFKA_VERSION jars with Maven into $KAFKA_HOME (first run only, ~45 MB)"
  rm -rf "$KAFKA_HOME/libs"
  # Maven prints one line per artifact it downloads, which is the progress shown here.
  mvn -B -f "$REPO_ROOT/infra/kafka/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" \
    | grep --line-buffered -E 'Downloaded from|BUILD|ERROR' | sed -u 's/^/    /' || true
  ls "$KAFKA_HOME"/libs/kafka_2.13-*.jar >/dev/null 2>&1 || die "Maven did not fetch the Kafka jars (see output above)"
  touch "$KAFKA_HOME/.complete"
}

# The JVM command line, as an array so that `"${KAFKA_JAVA[@]}" ... &` backgrounds java itself
# (a shell function would background a subshell, whose pid is not the broker's).
kafka_java_command() {
  KAFKA_JAVA=(java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$REPO_ROOT/infra/kafka/log4j2.yaml"
    -cp "$KAFKA_HOME/libs/*")
}

render_config() {
  mkdir -p "$KAFKA_STATE/data"
  sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
      -e "s#@LOG_DIR@#$KAFKA_STATE/data#g" \
      "$REPO_ROOT/infra/kafka/server.properties.template" > "$KAFKA_STATE/server.properties"
}

format_storage() {
  if [[ -f $KAFKA_STATE/data/meta.properties ]]; then return 0; fi
  say "formatting the KRaft log directory $KAFKA_STATE/data (first run only)"
  local cluster_id
  cluster_id=$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
    -c "$KAFKA_STATE/server.properties" >"$KAFKA_STATE/format.log" 2>&1 \
    || { tail -n 20 "$KAFKA_STATE/format.log" >&2; die "formatting the Kafka storage failed"; }
  grep -h '^Formatting' "$KAFKA_STATE/format.log" | sed 's/^/    /' || true
}

start() {
  if port_open "$KAFKA_PORT"; then
    say "Kafka: something already listens on 127.0.0.1:$KAFKA_PORT; using it"
    return 0
  fi
  fetch_jars
  kafka_java_command
  render_config
  format_storage
  say "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (log: $KAFKA_STATE/kafka.log)"
  # A session of its own (setsid execs in place, so $! is the JVM): a Ctrl-C or a timeout that
  # signals the caller's process group must not take the broker down; `kafka.sh stop` does that.
  setsid "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_STATE/server.properties" >>"$KAFKA_STATE/kafka.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  mark_started kafka
  if ! wait_for_port "$KAFKA_PORT" Kafka 120 "$PIDFILE"; then
    tail -n 30 "$KAFKA_STATE/kafka.log" >&2
    die "Kafka did not start (full log: $KAFKA_STATE/kafka.log)"
  fi
}

stop() {
  if started_by_us kafka; then
    stop_pidfile Kafka "$PIDFILE"
    rm -f "$STATE_DIR/kafka.started-by-us"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  fetch) fetch_jars ;;
  *) die "usage: kafka.sh start|stop|fetch" ;;
esac
