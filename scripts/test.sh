#!/usr/bin/env bash
# The project's test command, used by the README and by CI: formatting, lints, then unit
# and integration tests (the integration tests start their own etcd), then, with
# NSAGENT_BENCH_SMOKE=1 (the default under CI=true), every benchmark once at tiny sizes
# (scripts/bench-smoke.sh; needs root). Runs every step, prints a summary, and exits
# non-zero if any step failed.
set -euo pipefail
cd "$(dirname "$0")/.."

steps=(
    "cargo fmt --check"
    "cargo clippy --locked --all-targets -- -D warnings"
    "cargo test --locked --no-fail-fast --lib --bins --tests"
)
default_smoke=0
[ "${CI:-}" = true ] && default_smoke=1
if [ "${NSAGENT_BENCH_SMOKE:-$default_smoke}" = 1 ]; then
    steps+=("scripts/bench-smoke.sh")
fi

results=()
failed=0
for step in "${steps[@]}"; do
    echo
    echo "==> $step"
    start=$SECONDS
    if $step; then
        results+=("PASS  $step ($((SECONDS - start)) s)")
    else
        results+=("FAIL  $step ($((SECONDS - start)) s)")
        failed=1
    fi
done

echo
echo "==> summary"
printf '    %s\n' "${results[@]}"
if [ $failed -ne 0 ]; then
    echo "==> FAILED"
    exit 1
fi
echo "==> all passed"
