#!/usr/bin/env bash
# A private Docker engine for nsagent's tests: its own dockerd (and the containerd it
# manages) with everything under one directory, no iptables, no bridge, and a test image
# built without any registry (`docker import` of a static busybox). It never touches a
# system dockerd. Needs root and the docker.io and busybox-static packages.
#
#   docker-test-env.sh start [DIR]        start dockerd in DIR, build the test image, print
#                                         `export DOCKER_HOST=... NSAGENT_TEST_IMAGE=...`
#                                         lines (use: eval "$(docker-test-env.sh start)")
#   docker-test-env.sh stop-daemon [DIR]  stop that dockerd but keep DIR (its containers and
#                                         images) for a later `start DIR`
#   docker-test-env.sh kill-daemon [DIR]  the same with SIGKILL, as a crash (with
#                                         --live-restore its containers keep running)
#   docker-test-env.sh stop [DIR]         stop that dockerd, kill what is left of its
#                                         containers, and remove DIR
#
# NSAGENT_DOCKERD_ARGS: extra dockerd arguments for the first start of DIR (e.g.
# --live-restore); later starts of the same DIR reuse them.
# DIR defaults to $NSAGENT_DOCKER_DIR, else /tmp/nsagent-docker. Keep it short: the unix
# sockets under it must fit in 107 bytes. Progress goes to stderr, the log to DIR/dockerd.log.
set -euo pipefail

IMAGE=nsagent-test-busybox:1
MARKER=.nsagent-docker-test-env
START_TIMEOUT=60 # seconds
STOP_TIMEOUT=40  # seconds

cmd=${1:-}
dir=${2:-${NSAGENT_DOCKER_DIR:-/tmp/nsagent-docker}}
dir=${dir%/}
sock=$dir/docker.sock
pidfile=$dir/docker.pid
log=$dir/dockerd.log

say() { echo "docker-test-env: $*" >&2; }
die() {
    say "$*"
    exit 1
}
docker_cli() { docker -H "unix://$sock" "$@"; }

# The pid of our dockerd, if it runs: the pid file's process, checked to be a dockerd
# started with our socket (so a reused pid is never taken for ours).
our_dockerd() {
    [ -f "$pidfile" ] || return 1
    local pid
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "unix://$sock" || return 1
    echo "$pid"
}

# Pids of processes whose command line names a path under DIR (the containerd that dockerd
# manages and its shims), in case they outlive dockerd; each one's children come first
# (container processes of a shim).
leftovers() {
    local p arg ours=()
    for p in /proc/[0-9]*; do
        [ -r "$p/cmdline" ] || continue
        while IFS= read -r -d '' arg; do
            case "$arg" in
            "$dir"/* | "unix://$dir"/* | *"=$dir"/*)
                ours+=("${p#/proc/}")
                break
                ;;
            esac
        done <"$p/cmdline" 2>/dev/null || true
    done
    for p in "${ours[@]}"; do
        children_of "$p"
        echo "$p"
    done
}

children_of() { # pid
    local f stat rest fields
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        rest=${stat##*) } # after "(comm) ", which may hold spaces
        read -r -a fields <<<"$rest"
        [ "${fields[1]:-}" = "$1" ] && basename "$(dirname "$f")"
    done
    return 0
}

wait_gone() { # pid seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [ -e "/proc/$1" ] || return 0
        # A zombie has exited already.
        [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
        sleep 0.1
    done
    return 1
}

start_dockerd() { # storage driver ("" = dockerd's default)
    local args=(
        --iptables=false --ip6tables=false --bridge=none --ip-forward=false
        --host "unix://$sock" --data-root "$dir/root" --exec-root "$dir/exec"
        --pidfile "$pidfile"
    )
    [ -n "$1" ] && args+=(--storage-driver "$1")
    local extra=()
    read -r -a extra <"$dir/dockerd-args"
    args+=("${extra[@]}")
    say "starting dockerd in $dir${1:+ (storage driver $1)}"
    echo "=== $(date -Is) dockerd ${args[*]}" >>"$log"
    # setsid: not in the caller's process group, so a Ctrl-C of the tests does not reach it;
    # -w: $! stays a live process as long as dockerd runs, whether setsid forks or not.
    setsid -w dockerd "${args[@]}" >>"$log" 2>&1 </dev/null &
    local launcher=$! i
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        if docker_cli version >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$launcher" 2>/dev/null; then
            wait "$launcher" 2>/dev/null || true
            return 1
        fi
        sleep 0.1
    done
    say "dockerd did not answer within ${START_TIMEOUT}s"
    return 1
}

build_image() {
    docker_cli image inspect "$IMAGE" >/dev/null 2>&1 && return 0
    local busybox
    busybox=$(command -v busybox || true)
    [ -n "$busybox" ] || busybox=/bin/busybox
    [ -x "$busybox" ] || die "busybox not found: install busybox-static"
    if ldd "$busybox" >/dev/null 2>&1; then
        die "$busybox is dynamically linked: install busybox-static"
    fi
    local rootfs
    rootfs=$(mktemp -d "$dir/rootfs.XXXXXX")
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
    cp "$busybox" "$rootfs/bin/busybox"
    local c
    for c in sh sleep tail ip ping cat ls kill true; do
        ln -s busybox "$rootfs/bin/$c"
    done
    tar -C "$rootfs" -c . | docker_cli import - "$IMAGE" >/dev/null
    rm -rf "$rootfs"
    say "built image $IMAGE"
}

start() {
    command -v dockerd >/dev/null || die "dockerd not found: install docker.io"
    command -v docker >/dev/null || die "docker CLI not found: install docker.io"
    [ "$(id -u)" -eq 0 ] || die "needs root"
    [ ${#sock} -lt 100 ] || die "directory path too long for a unix socket: $dir"
    if pid=$(our_dockerd); then
        say "dockerd already running in $dir (pid $pid)"
    else
        if [ -e "$dir" ] && [ ! -f "$dir/$MARKER" ]; then
            die "$dir exists and was not made by this script"
        fi
        mkdir -p "$dir"
        touch "$dir/$MARKER"
        if [ ! -f "$dir/dockerd-args" ]; then
            echo "${NSAGENT_DOCKERD_ARGS:-}" >"$dir/dockerd-args"
        fi
        local driver=""
        [ -f "$dir/storage-driver" ] && driver=$(cat "$dir/storage-driver")
        if ! start_dockerd "$driver"; then
            if [ -z "$driver" ]; then
                say "dockerd failed with the default storage driver, trying vfs; log tail:"
                tail -n 5 "$log" >&2
                stop_daemon
                kill_leftovers
                unmount_all
                rm -rf "$dir/root"
                driver=vfs
                start_dockerd "$driver" || {
                    tail -n 30 "$log" >&2
                    die "dockerd failed to start; log: $log"
                }
            else
                tail -n 30 "$log" >&2
                die "dockerd failed to start; log: $log"
            fi
        fi
        echo "$driver" >"$dir/storage-driver"
        say "dockerd ready (pid $(cat "$pidfile")), DOCKER_HOST=unix://$sock"
    fi
    build_image
    echo "export DOCKER_HOST=unix://$sock"
    echo "export NSAGENT_TEST_IMAGE=$IMAGE"
}

stop_daemon() {
    local pid
    if pid=$(our_dockerd); then
        say "stopping dockerd (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
            say "dockerd (pid $pid) did not stop within ${STOP_TIMEOUT}s, killing it"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || true
        fi
    fi
    rm -f "$pidfile"
}

kill_daemon() {
    local pid cpid cpidfile=$dir/exec/containerd/containerd.pid
    if pid=$(our_dockerd); then
        say "killing dockerd (pid $pid)"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || die "dockerd (pid $pid) is still there after SIGKILL"
    fi
    rm -f "$pidfile"
    # The containerd that dockerd runs goes with it (the shims and containers stay). The next
    # dockerd would take its pid file, even while it is a zombie, for a containerd that still
    # runs and wait for it in vain.
    [ -f "$cpidfile" ] || return 0
    cpid=$(cat "$cpidfile")
    if [ -n "$cpid" ] && tr '\0' ' ' <"/proc/$cpid/cmdline" 2>/dev/null | grep -qF -- "$dir/"; then
        kill -KILL "$cpid" 2>/dev/null || true
        wait_gone "$cpid" 5 || die "containerd (pid $cpid) is still there after SIGKILL"
    fi
    rm -f "$cpidfile"
}

# Mounts under DIR (data root, overlays, shm, netns) that dockerd left behind (it keeps them
# with --live-restore or when killed), deepest first.
unmount_all() {
    local m
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}

kill_leftovers() {
    local p
    for p in $(leftovers); do
        say "killing leftover process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-100)"
        kill -KILL "$p" 2>/dev/null || true
        wait_gone "$p" 5 || true
    done
}

stop() {
    if our_dockerd >/dev/null; then
        # Remove containers while dockerd can still do it cleanly (with --live-restore they
        # would outlive it); best effort, kill_leftovers catches the rest.
        local ids
        ids=$(timeout 30 docker -H "unix://$sock" ps -aq 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086 # one id per word
            timeout 30 docker -H "unix://$sock" rm -f $ids >/dev/null 2>&1 || true
        fi
    fi
    stop_daemon
    kill_leftovers
    [ -e "$dir" ] || return 0
    [ -f "$dir/$MARKER" ] || die "$dir was not made by this script, not removing it"
    unmount_all
    # Empty cgroups of containers whose dockerd was killed (rmdir removes only empty ones).
    local container id cg
    for container in "$dir"/root/containers/*; do
        id=$(basename "$container")
        for cg in /sys/fs/cgroup/*/docker/"$id" /sys/fs/cgroup/docker/"$id"; do
            if [ -d "$cg" ]; then rmdir "$cg" 2>/dev/null || true; fi
        done
    done
    rm -rf "$dir"
    say "removed $dir"
}

case "$cmd" in
start) start ;;
stop-daemon) stop_daemon ;;
kill-daemon) kill_daemon ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop-daemon|kill-daemon|stop [DIR]" >&2
    exit 2
    ;;
esac
