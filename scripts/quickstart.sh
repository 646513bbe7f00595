#!/usr/bin/env bash
# Quickstart on a Debian machine with Rust (rustup), as root, e.g. `sudo scripts/quickstart.sh`:
#   scripts/quickstart.sh        install the Debian packages it needs, build the release
#                                binaries with the Rust of the user who ran sudo, start etcd
#                                (unless one already listens on 127.0.0.1:2379) and the
#                                agent, put the named-pair example and show the result
#   scripts/quickstart.sh stop   stop the processes started here (pid files in $STATE)
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=/tmp/nsagent-quickstart
ENDPOINT=127.0.0.1:2379
PEER=127.0.0.1:2380

# True when something accepts connections on 127.0.0.1:2379.
etcd_listening() {
    (exec 3<>/dev/tcp/127.0.0.1/2379) 2>/dev/null
}

# True when the pid file $1 names a live process whose command line contains $2.
running() {
    [ -f "$1" ] && grep -qa -- "$2" "/proc/$(cat "$1")/cmdline" 2>/dev/null
}

# Makes cargo findable in the environment it runs in: the PATH, else ~/.cargo/env (what
# rustup's installer adds to ~/.profile). Used inside `bash -c` strings too.
# shellcheck disable=SC2016 # expanded by the shell that runs it
LOAD_CARGO='command -v cargo >/dev/null || { [ ! -f "$HOME/.cargo/env" ] || . "$HOME/.cargo/env"; }'

# Runs the bash command $2 as user $1 in that user's login environment (rustup's installer
# puts ~/.cargo/bin on the PATH there), not root's.
as_user() {
    local user=$1 home
    home=$(getent passwd "$user" | cut -d: -f6)
    runuser -u "$user" -- env -i -C / HOME="$home" USER="$user" LOGNAME="$user" \
        PATH=/usr/local/bin:/usr/bin:/bin TERM="${TERM:-dumb}" \
        ${http_proxy:+http_proxy="$http_proxy"} ${https_proxy:+https_proxy="$https_proxy"} \
        ${no_proxy:+no_proxy="$no_proxy"} \
        bash -lc "$LOAD_CARGO; $2"
}

# True when user $1 owns the project and whatever target/ holds, so that a build as
# them leaves no root-owned files in their tree.
owns_tree() {
    [ "$(stat -c %U .)" = "$1" ] || return 1
    [ ! -e target ] || [ -z "$(find target -maxdepth 3 ! -user "$1" -print -quit)" ]
}

no_rust() {
    echo "quickstart: cargo not found for $1 (neither on the PATH of a login shell nor in ~/.cargo/bin)." >&2
    echo "Install Rust as $1 with rustup (https://rustup.rs), then run sudo scripts/quickstart.sh again." >&2
    exit 1
}

# Builds the release binaries with the Rust of the user who ran sudo: as that user when
# the checkout is theirs (their rustup toolchain and cargo cache; target/ stays theirs),
# else as root, with root's cargo or, failing that, that user's toolchain.
build() {
    local user=${SUDO_USER:-}
    if [ -z "$user" ] || [ "$user" = root ] || ! getent passwd "$user" >/dev/null; then
        user=""
    fi
    if [ -n "$user" ] && owns_tree "$user"; then
        as_user "$user" 'command -v cargo >/dev/null' || no_rust "$user"
        echo "quickstart: building as $user (cargo build --release --locked)"
        as_user "$user" "cd $(printf %q "$PWD") && cargo build --release --locked"
        return
    fi
    eval "$LOAD_CARGO"
    if ! command -v cargo >/dev/null && [ -n "$user" ]; then
        # The checkout is not theirs: build as root with their toolchain.
        local found
        # shellcheck disable=SC2016 # expanded in the user's shell
        found=$(as_user "$user" 'command -v cargo && echo "${RUSTUP_HOME:-$HOME/.rustup}"') || no_rust "$user"
        # The last two lines: a chatty ~/.profile may print before them.
        PATH="$(dirname "$(tail -n 2 <<<"$found" | head -n 1)"):$PATH"
        RUSTUP_HOME=$(tail -n 1 <<<"$found")
        export PATH RUSTUP_HOME
    fi
    command -v cargo >/dev/null || no_rust "${user:-root}"
    echo "quickstart: building as root (cargo build --release --locked)"
    cargo build --release --locked
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
    scripts/install-deps.sh quickstart
    build
    mkdir -p "$STATE"

    if etcd_listening; then
        echo "etcd: using the one already listening on $ENDPOINT"
    else
        # Peer URLs on 127.0.0.1 too: etcd's default (localhost) needs name resolution.
        etcd --data-dir "$STATE/etcd-data" \
            --listen-client-urls "http://$ENDPOINT" --advertise-client-urls "http://$ENDPOINT" \
            --listen-peer-urls "http://$PEER" --initial-advertise-peer-urls "http://$PEER" \
            --initial-cluster "default=http://$PEER" \
            >"$STATE/etcd.log" 2>&1 &
        echo $! >"$STATE/etcd.pid"
        for _ in $(seq 50); do etcd_listening && break; sleep 0.2; done
        etcd_listening || {
            echo "quickstart: etcd did not start; $STATE/etcd.log:" >&2
            tail -n 20 "$STATE/etcd.log" >&2
            exit 1
        }
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
        ip -n ns2 addr show 2>/dev/null | grep 192.168.22.2 >/dev/null && break
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
