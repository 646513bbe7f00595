#!/usr/bin/env bash
# Quickstart on a Debian machine, as root:
#   scripts/quickstart.sh        install packages, build, start etcd (unless one already
#                                listens on 127.0.0.1:2379) and the agent, put the
#                                named-pair example and show the result
#   scripts/quickstart.sh stop   stop the processes started here (pid files in $STATE)
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=/tmp/nsagent-quickstart
ENDPOINT=127.0.0.1:2379

# True when something accepts connections on 127.0.0.1:2379.
etcd_listening() {
    (exec 3<>/dev/tcp/127.0.0.1/2379) 2>/dev/null
}

# True when the pid file $1 names a live process whose command line contains $2.
running() {
    [ -f "$1" ] && grep -qa -- "$2" "/proc/$(cat "$1")/cmdline" 2>/dev/null
}

stop() {
    for name in nsagent etcd; do
        pidfile="$STATE/$name.pid"
        if running "$pidfile" "$name"; then
            kill "$(cat "$pidfile")"
            echo "stopped $name (pid $(cat "$pidfile"))"
        fi
        rm -f "$pidfile"
    done
    echo "namespaces ns1 and ns2 stay (the agent never deletes them): ip netns del ns1; ip netns del ns2"
}

start() {
    [ "$(id -u)" -eq 0 ] || { echo "quickstart: run as root (the agent creates namespaces and links)" >&2; exit 1; }
    scripts/install-deps.sh
    if [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    cargo build --release --locked
    mkdir -p "$STATE"

    if etcd_listening; then
        echo "etcd: using the one already listening on $ENDPOINT"
    else
        etcd --data-dir "$STATE/etcd-data" \
            --listen-client-urls "http://$ENDPOINT" --advertise-client-urls "http://$ENDPOINT" \
            >"$STATE/etcd.log" 2>&1 &
        echo $! >"$STATE/etcd.pid"
        for _ in $(seq 50); do etcd_listening && break; sleep 0.2; done
        etcd_listening || { echo "quickstart: etcd did not start, see $STATE/etcd.log" >&2; exit 1; }
        echo "etcd: started (log $STATE/etcd.log)"
    fi

    if running "$STATE/nsagent.pid" nsagent; then
        echo "nsagent: already running (pid $(cat "$STATE/nsagent.pid"))"
    else
        target/release/nsagent --etcd-endpoints "$ENDPOINT" >"$STATE/nsagent.log" 2>&1 &
        echo $! >"$STATE/nsagent.pid"
        sleep 1
        running "$STATE/nsagent.pid" nsagent || {
            echo "quickstart: nsagent exited (scripts/quickstart.sh stop cleans up); $STATE/nsagent.log:" >&2
            tail -n 20 "$STATE/nsagent.log" >&2
            exit 1
        }
        echo "nsagent: started (log $STATE/nsagent.log)"
    fi

    target/release/nsagent-ctl --etcd-endpoints "$ENDPOINT" example named-pair --put
    for _ in $(seq 50); do
        ip -n ns2 addr show 2>/dev/null | grep -q 192.168.22.2 && break
        sleep 0.2
    done
    echo; echo "\$ ip -n ns1 addr"; ip -n ns1 addr || true
    echo; echo "\$ ip -n ns2 addr"; ip -n ns2 addr || true
    echo
    echo "Try: ip netns exec ns1 ping -c1 192.168.22.2"
    echo "     target/release/nsagent-ctl list --values"
    echo "     curl -s localhost:9191/status; curl -s localhost:9191/metrics   (the HTTP API, see README)"
    echo "Stop: scripts/quickstart.sh stop"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 1 ;;
esac
