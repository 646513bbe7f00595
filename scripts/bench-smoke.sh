#!/usr/bin/env bash
# Smoke run of every benchmark at tiny sizes, so that they keep working: run by
# scripts/test.sh when NSAGENT_BENCH_SMOKE=1 (or, unset, under CI=true). The figures mean
# nothing at these sizes and are never checked; a benchmark fails only when something does
# not converge. Built with the dev profile, so the test suite's build is reused (timings
# of a debug build are no figures anyway).
#
# Needs root, etcd and iproute2 (without root: "skipping", a failure under CI=true). The
# microservice benchmark also needs a private Docker engine in DOCKER_HOST (start one with
# `eval "$(scripts/docker-test-env.sh start)"`); without one it is skipped, a failure
# under CI=true. Each benchmark is stopped after NSAGENT_BENCH_SMOKE_TIMEOUT seconds (300).
set -euo pipefail
cd "$(dirname "$0")/.."

ci=false
[ "${CI:-}" = true ] && ci=true
skip() {
    if $ci; then
        echo "bench-smoke: $1 (CI=true)" >&2
        exit 1
    fi
    echo "skipping: $1"
}

if [ "$(id -u)" -ne 0 ]; then
    skip "the benchmarks need root"
    exit 0
fi

runs=(
    "veth -- --sizes 20,30 --per-namespace 5 --samples 3"
    "l3 -- --interfaces 8 --namespaces 2 --routes 20 --arps 20 --single-routes 5"
    "soak -- --cycles 2 --pairs 10 --namespaces 2 --report-every 1 --settle-s 1"
    "repair -- --samples 1"
)
if [ -n "${DOCKER_HOST:-}" ]; then
    runs+=("microservice -- --samples 2")
else
    skip "the microservice benchmark needs DOCKER_HOST (a private Docker engine)"
fi

# One build of every benchmark (in parallel), then the runs.
cargo bench --locked --profile dev --no-run
started=$SECONDS
for run in "${runs[@]}"; do
    echo
    echo "--> cargo bench --locked --profile dev --bench $run"
    # shellcheck disable=SC2086 # the run is split into words on purpose
    timeout "${NSAGENT_BENCH_SMOKE_TIMEOUT:-300}" cargo bench --locked --profile dev --bench $run
done
echo
echo "bench-smoke: every benchmark ran in $((SECONDS - started)) s"
