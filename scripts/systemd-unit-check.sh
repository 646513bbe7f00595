#!/usr/bin/env bash
# Checks packaging/nsagent.service under a real systemd: boots a minimal Debian 12 (debootstrap,
# with systemd and Debian's etcd) in systemd-nspawn with a private network, installs the
# binaries of BIN_DIR, the unit and its /etc/default/nsagent as the README says, and checks
#   - the unit starts and stays active under its capability set and restrictions,
#   - a named namespace the agent creates is usable from outside the service (ip -n ns1),
#   - a PID reference to another user's process (user and network namespace of `nobody`)
#     is applied (CAP_SYS_PTRACE).
# Everything is removed on exit, also on failure (NSAGENT_SYSTEMD_KEEP=1 keeps the root).
#
#   systemd-unit-check.sh [BIN_DIR]   BIN_DIR holds nsagent and nsagent-ctl (default target/release)
#
# Needs root, debootstrap and systemd-nspawn (systemd-container).
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=${1:-target/release}
timeout_s=60

say() { echo "systemd-unit-check: $*" >&2; }
die() {
    say "$*"
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root"
for tool in debootstrap systemd-nspawn nsenter; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs it)"
done
for f in nsagent nsagent-ctl; do
    [ -x "$bin_dir/$f" ] || die "$bin_dir/$f not found"
done

work=$(mktemp -d /tmp/nsa-systemd.XXXXXX)
root=$work/root
machine=nsa-systemd-$$
nspawn_pid=""

# shellcheck disable=SC2317 # called by the trap
cleanup() {
    local status=$?
    if [ -n "$nspawn_pid" ]; then
        if [ "$status" -ne 0 ]; then
            say "journal of nsagent.service:"
            in_machine journalctl -u nsagent --no-pager 2>&1 | tail -n 30 >&2 || true
        fi
        # SIGTERM: nspawn shuts the container's systemd down cleanly.
        kill "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if grep -q " ${work}[/ ]" /proc/self/mounts; then
        say "mounts left under $work, not removing it"
    elif [ "${NSAGENT_SYSTEMD_KEEP:-}" = 1 ]; then
        say "kept $work"
    else
        rm -rf --one-file-system "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

# PID of the container's systemd: the child of systemd-nspawn.
container_pid() {
    local f stat rest fields
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        rest=${stat##*) }
        read -r -a fields <<<"$rest"
        if [ "${fields[1]:-}" = "$nspawn_pid" ]; then
            basename "$(dirname "$f")"
            return 0
        fi
    done
    return 1
}
in_machine() { nsenter -t "$(container_pid)" -a "$@"; }

wait_until() { # description command...
    local what=$1 deadline=$((SECONDS + timeout_s))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "timed out after ${timeout_s}s waiting for $what"
        sleep 0.5
    done
}

say "minimal Debian 12 with systemd and etcd in $root"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,util-linux,etcd-server,etcd-client \
    bookworm "$root" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed"
}
printf '%s\n' "127.0.0.1 localhost" "::1 localhost" >"$root/etc/hosts"

say "installing the binaries of $bin_dir and the unit as the README says"
install -m 0755 "$bin_dir/nsagent" "$bin_dir/nsagent-ctl" "$root/usr/local/bin/"
install -m 0644 packaging/nsagent.service "$root/etc/systemd/system/"
install -m 0644 packaging/nsagent.default "$root/etc/default/nsagent"
chroot "$root" systemctl enable nsagent.service >/dev/null 2>&1
# A PID reference to a process of another user, in a network namespace of its own.
cat >"$root/root/p1.json" <<'EOF'
{"name": "p1", "type": "VETH", "enabled": true, "host_if_name": "p1",
 "ip_addresses": ["192.168.77.1/24"], "namespace": {"type": "PID_REF_NS", "pid": @PID@},
 "veth": {"peer_if_name": "p2"}}
EOF
cat >"$root/root/p2.json" <<'EOF'
{"name": "p2", "type": "VETH", "enabled": true, "host_if_name": "p2",
 "ip_addresses": ["192.168.77.2/24"], "veth": {"peer_if_name": "p1"}}
EOF

say "booting it with systemd-nspawn (machine $machine, private network)"
systemd-nspawn -D "$root" -b --private-network --register=no --keep-unit -M "$machine" \
    </dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!
wait_until "the container's systemd" container_pid
booted() { in_machine systemctl is-system-running --wait | grep -E '^(running|degraded)$' >/dev/null; }
wait_until "the end of the boot" booted
wait_until "etcd" in_machine etcdctl endpoint health
in_machine systemctl restart nsagent # started at boot, possibly before etcd listened
wait_until "nsagent.service to be active" in_machine systemctl is-active nsagent

say "named namespaces made by the service, seen from outside it"
in_machine nsagent-ctl example named-pair --put >/dev/null
wait_until "veth1 with 192.168.22.1/24 in ns1" \
    in_machine sh -c 'ip -n ns1 -o addr show veth1 | grep -q "inet 192.168.22.1/24"'
wait_until "veth2 with 192.168.22.2/24 in ns2" \
    in_machine sh -c 'ip -n ns2 -o addr show veth2 | grep -q "inet 192.168.22.2/24"'

say "a PID reference to a process of user nobody"
in_machine sh -c 'setpriv --reuid=65534 --regid=65534 --clear-groups unshare -r -n sleep 600 </dev/null >/dev/null 2>&1 &'
# Prints the PID (in the container) of that process of nobody; fails while there is none.
nobody_pid() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    in_machine sh -c 'for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm")" = sleep ] && [ "$(stat -c %u "$p")" = 65534 ] && echo "${p#/proc/}"
    done' | grep -m 1 .
}
wait_until "the process of nobody" nobody_pid
pid=$(nobody_pid)
sed -i "s/@PID@/$pid/" "$root/root/p1.json"
in_machine nsagent-ctl put interface/p1 /root/p1.json >/dev/null
in_machine nsagent-ctl put interface/p2 /root/p2.json >/dev/null
wait_until "p1 with 192.168.77.1/24 in the namespace of pid $pid" \
    in_machine nsenter -t "$pid" -n sh -c 'ip -o addr show p1 | grep -q "inet 192.168.77.1/24"'
in_machine systemctl is-active nsagent >/dev/null || die "nsagent.service is no longer active"
say "passed: the unit runs the agent, named namespaces are shared with the host, PID references work"
