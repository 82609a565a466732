#!/usr/bin/env bash
# bench_tools.sh: the tools `make bench` drives the system with that are not Python packages:
# Debian's wrk (a closed-loop HTTP load generator in C, so the generator is not the bottleneck).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v wrk >/dev/null || need_root_or_say "wrk (the HTTP load generator of \`make bench\`)" "wrk"
command -v wrk >/dev/null || die "no wrk on PATH after installing it"
