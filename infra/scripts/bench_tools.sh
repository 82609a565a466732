#!/usr/bin/env bash
# bench_tools.sh: the tools `make bench` drives the system with that are not Python packages:
# Debian's wrk (a closed-loop HTTP load generator in C, so the generator is not the bottleneck) and
# Debian's Prometheus Alertmanager (the baseline of accepting alerts in lists: it keeps them in memory).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v wrk >/dev/null || need_root_or_say "wrk (the HTTP load generator of \`make bench\`)" "wrk"
command -v wrk >/dev/null || die "no wrk on PATH after installing it"

command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
  || need_root_or_say "prometheus-alertmanager (the baseline of \`make bench\` for lists of alerts)" "prometheus-alertmanager"
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
  || die "no prometheus-alertmanager on PATH after installing it"
# The package enables a system service (port 9093); the bench starts its own instance, on a port of its
# own, and needs no daemon left running.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus-alertmanager 2>/dev/null; then
  systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
fi
