#!/usr/bin/env bash
# Brings the repository's docker-compose.yml up, as `docker compose up` does for a user, and
# checks that the demo container gets its end of the microservice-pair example (eth0 with
# 192.168.55.2/24) and that the agent's end (192.168.55.1) answers a ping from inside it.
#
# No image registry is needed: the images are made here with `docker import` and passed
# through the compose file's image variables. The agent's image holds the release binaries
# of BIN_DIR and `ip`, with the shared libraries they load (what the Dockerfile's image holds);
# etcd's holds Debian's etcd and etcdctl; the demo is the static busybox image of
# scripts/docker-test-env.sh.
#
# Where Docker cannot start a privileged container at all (as in CI's sandbox, whose capability
# bounding set lacks CAP_SYS_RESOURCE), scripts/compose-unprivileged.yml gives the agent its
# capabilities instead of `privileged: true`; everything else is the file as users run it.
#
# Isolation: a dockerd of its own (scripts/docker-test-env.sh) runs inside a new network
# namespace nsa-compose-<pid>, so the "host network" of etcd, the agent and the agent's end of
# the pair is that namespace, not this machine's; the compose project, the agent's label and
# etcd's ports are the test's own. On exit, also on failure: `down -v`, that dockerd stopped
# and its directory removed, the namespace deleted.
#
#   compose-test.sh [BIN_DIR]    BIN_DIR holds nsagent and nsagent-ctl (default target/release)
#
# Needs root, docker.io, busybox-static, etcd-server, etcd-client, iproute2 and docker-compose
# (or the docker compose plugin; NSAGENT_COMPOSE="docker-compose" chooses).
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=${1:-target/release}
id=nsa-compose-$$
netns=$id
dir=$(mktemp -d "/tmp/$id.XXXXXX")
timeout_s=90
dockerd_started=""
project_up=""

say() { echo "compose-test: $*" >&2; }
die() {
    say "$*"
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root"
for f in nsagent nsagent-ctl; do
    [ -x "$bin_dir/$f" ] || die "$bin_dir/$f not found (cargo build --release)"
done
if [ -n "${NSAGENT_COMPOSE:-}" ]; then
    read -r -a compose <<<"$NSAGENT_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
else
    die "neither docker compose nor docker-compose found (apt-get install docker-compose)"
fi

cleanup() {
    local status=$?
    if [ -n "$project_up" ]; then
        if [ "$status" -ne 0 ]; then
            say "logs:"
            "${compose[@]}" logs --no-color 2>&1 | tail -n 60 >&2 || true
        fi
        "${compose[@]}" down -v -t 1 --remove-orphans >&2 || say "compose down failed"
    fi
    [ -z "$dockerd_started" ] || scripts/docker-test-env.sh stop "$dir" || true
    rm -rf "$dir"
    ip netns del "$netns" 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT

# Copies into root $1 the shared libraries that the programs $2... load (none for a static one).
add_libs() {
    local root=$1 f lib
    shift
    for f in "$@"; do
        for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
            [ -e "$root$lib" ] || cp -L --parents "$lib" "$root"
        done
    done
}

# Imports root $2 as image $1 with the Dockerfile-like changes that follow.
import_image() {
    local image=$1 root=$2
    shift 2
    local changes=(--change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for c in "$@"; do changes+=(--change "$c"); done
    mkdir -p "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/etc" "$root/var"
    ln -sfn ../run "$root/var/run"
    tar -C "$root" -c . | docker import "${changes[@]}" - "$image" >/dev/null
    rm -rf "$root"
}

ip netns add "$netns"
ip -n "$netns" link set lo up
say "dockerd of its own in network namespace $netns"
touch "$dir/.nsagent-docker-test-env"
dockerd_started=1
eval "$(nsenter --net="/run/netns/$netns" scripts/docker-test-env.sh start "$dir")"
export DOCKER_HOST

say "images from $bin_dir and Debian's etcd (no registry)"
root=$(mktemp -d "$dir/agent.XXXXXX")
mkdir -p "$root/usr/local/bin"
cp "$bin_dir/nsagent" "$bin_dir/nsagent-ctl" "$root/usr/local/bin/"
cp -L --parents "$(command -v ip)" "$root"
add_libs "$root" "$bin_dir/nsagent" "$bin_dir/nsagent-ctl" "$(command -v ip)"
import_image "$id-agent:1" "$root" 'CMD ["nsagent"]'
root=$(mktemp -d "$dir/etcd.XXXXXX")
cp -L --parents "$(command -v etcd)" "$(command -v etcdctl)" "$root"
add_libs "$root" "$(command -v etcd)" "$(command -v etcdctl)"
mkdir -p "$root/var/lib/etcd"
import_image "$id-etcd:1" "$root" 'CMD ["etcd"]'

export COMPOSE_PROJECT_NAME=$id
export NSAGENT_IMAGE=$id-agent:1 ETCD_IMAGE=$id-etcd:1 DEMO_IMAGE=$NSAGENT_TEST_IMAGE
export NSAGENT_ETCD_PORT=12379 NSAGENT_ETCD_PEER_PORT=12380 # any port is free in $netns
export NSAGENT_LABEL=$id NSAGENT_DOCKER_SOCKET=${DOCKER_HOST#unix://}
compose+=(--project-directory . -f docker-compose.yml)
if ! docker run --rm --privileged --network none "$NSAGENT_TEST_IMAGE" true >/dev/null 2>&1; then
    say "this Docker cannot start privileged containers here: the agent gets its capabilities from scripts/compose-unprivileged.yml"
    compose+=(-f scripts/compose-unprivileged.yml)
fi

say "${compose[*]} up -d (project $id)"
project_up=1
"${compose[@]}" up -d >&2

container() { # service
    docker ps -aq --filter "label=com.docker.compose.project=$id" \
        --filter "label=com.docker.compose.service=$1" | head -n 1
}
demo=$(container demo)
[ -n "$demo" ] || die "no demo container"
deadline=$((SECONDS + timeout_s))
until docker exec "$demo" ip -o addr show eth0 2>/dev/null | grep 'inet 192.168.55.2/24' >/dev/null; do
    [ $SECONDS -lt $deadline ] || die "the demo container has no eth0 with 192.168.55.2/24 after ${timeout_s}s"
    sleep 0.5
done
say "demo container: $(docker exec "$demo" ip -o addr show eth0 | grep -o 'inet [^ ]*')"
example=$(container example)
[ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$example")" = "exited 0" ] ||
    die "the example service did not exit 0: $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$example")"
docker exec "$demo" ping -c 1 -W 5 192.168.55.1 >&2 || die "no answer from 192.168.55.1 to a ping from the demo container"
say "passed: the demo container has its end and the agent's end answers its ping"
