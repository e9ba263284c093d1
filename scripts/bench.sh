#!/usr/bin/env bash
# natmap's benchmarks: time from start to the first notify in the namespace
# lab (needs root and the lab's tools), and the STUN reply parser.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-$(scripts/go.sh)}
scripts/deps.sh
echo "== time from natmap's start to its first notify (namespace lab, full-cone NAT)"
"$GO" test -run '^$' -bench '^BenchmarkTimeToFirstNotify$' -benchtime "${BENCHTIME:-50x}" -count "${COUNT:-1}" ./e2e/ | grep -E '^(Benchmark|cpu)'
echo "== STUN reply parsing"
"$GO" test -run '^$' -bench . -benchmem ./internal/stun/ | grep -E '^Benchmark'
