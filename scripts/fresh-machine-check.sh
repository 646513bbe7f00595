#!/usr/bin/env bash
# Proves that the README's first command works on a fresh machine: in a minimal Debian 12
# (debootstrap --variant=minbase, plus ca-certificates and sudo) whose only other software
# is a Rust toolchain installed by rustup for an ordinary user `dev` (this machine's, mounted
# read-only), runs as `dev`, in a copy of the committed HEAD:
#     sudo scripts/quickstart.sh         then checks the named-pair ends and a ping
#     sudo scripts/quickstart.sh stop    then checks that the agent and etcd are gone
# The root starts without a C compiler, protoc or etcd (checked): the quickstart has to
# install all of them itself. The build happens inside the root, from crates.io.
#
# Isolation: the root runs under chroot in its own mount, PID and network namespaces. Its
# network namespace reaches the package registries through slirp4netns (user-mode NAT: no
# route, address or firewall change on this machine), so the quickstart's etcd on
# 127.0.0.1:2379, its agent (label vpp1) and its namespaces ns1/ns2 never meet this machine's.
# Everything is removed on exit, also on failure.
#
#   fresh-machine-check.sh              needs root, debootstrap, slirp4netns, git
#
# NSAGENT_FRESH_BIN_DIR=DIR: copy the release binaries the quickstart built into DIR.
# NSAGENT_FRESH_KEEP=1: keep the work directory (the root and logs) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "fresh-machine-check: $*" >&2; }
die() {
    say "$*"
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root"
for tool in debootstrap slirp4netns unshare nsenter chroot git; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs it)"
done
# The Rust toolchain lent to the fresh machine: this machine's rustup installation.
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_bin=$(dirname "$(command -v cargo || echo "$HOME/.cargo/bin/cargo")")
if [ ! -d "$rustup_home/toolchains" ] || [ ! -x "$cargo_bin/rustup" ]; then
    die "no rustup toolchain to lend (looked for $rustup_home and $cargo_bin/rustup)"
fi

work=$(mktemp -d /tmp/nsa-fresh.XXXXXX)
root=$work/root
netns=$work/netns
slirp_pid=""
inner_pid=""
started=$SECONDS

cleanup() {
    local status=$?
    # unshare --kill-child takes the whole PID namespace (quickstart, etcd, agent) with it.
    [ -z "$inner_pid" ] || kill "$inner_pid" 2>/dev/null || true
    [ -z "$slirp_pid" ] || kill "$slirp_pid" 2>/dev/null || true
    umount "$netns" 2>/dev/null || true
    # Every other mount lived in the check's own mount namespace and is gone with it;
    # never remove a tree that still has something mounted in it.
    if grep -q " ${work}[/ ]" /proc/self/mounts; then
        say "mounts left under $work, not removing it"
    elif [ "${NSAGENT_FRESH_KEEP:-}" = 1 ]; then
        say "kept $work"
    else
        rm -rf --one-file-system "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

phase() { say "[$((SECONDS - started)) s] $*"; }

phase "minimal Debian 12 root in $root (debootstrap --variant=minbase)"
debootstrap --variant=minbase --include=ca-certificates,sudo bookworm "$root" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed"
}
for tool in cc gcc protoc etcd ip; do
    if chroot "$root" sh -c "command -v $tool" >/dev/null; then
        die "the minimal root already has $tool: it would not prove that the quickstart installs it"
    fi
done

phase "user dev with rustup's Rust, project copy of $(git rev-parse --short HEAD)"
chroot "$root" useradd -m -s /bin/bash dev
echo 'dev ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/dev"
chmod 0440 "$root/etc/sudoers.d/dev"
home=$root/home/dev
mkdir -p "$home/.cargo/bin" "$home/.rustup"
# What rustup's installer writes: ~/.cargo/env, sourced from the login profile.
# shellcheck disable=SC2016 # written for dev's shell
printf '%s\n' '#!/bin/sh' 'case ":${PATH}:" in *:"$HOME/.cargo/bin":*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac' >"$home/.cargo/env"
# shellcheck disable=SC2016
echo '. "$HOME/.cargo/env"' | tee -a "$home/.profile" >>"$home/.bashrc"
git archive --prefix=nsagent/ HEAD | tar -x -C "$home"
chroot "$root" chown -R dev:dev /home/dev
echo "nameserver 10.0.2.3" >"$root/etc/resolv.conf" # slirp4netns's DNS forwarder
# What the Debian installer (or a cloud image) writes and debootstrap leaves out.
echo fresh-debian >"$root/etc/hostname"
printf '%s\n' "127.0.0.1 localhost" "127.0.1.1 fresh-debian" "::1 localhost ip6-localhost ip6-loopback" >"$root/etc/hosts"

phase "network namespace with slirp4netns"
touch "$netns"
unshare --net="$netns" true
slirp4netns --configure --mtu=65520 --disable-host-loopback --netns-type=path "$netns" tap0 \
    >"$work/slirp4netns.log" 2>&1 &
slirp_pid=$!
for _ in $(seq 100); do
    nsenter --net="$netns" ip -o addr show tap0 2>/dev/null | grep 'inet ' >/dev/null && break
    kill -0 "$slirp_pid" 2>/dev/null || die "slirp4netns exited: $(cat "$work/slirp4netns.log")"
    sleep 0.1
done
nsenter --net="$netns" ip link set lo up

# Runs inside the new mount and PID namespaces (as their PID 1): mounts the root's API file
# systems and Rust, runs the user's commands in the root and checks their effects.
# shellcheck disable=SC2016 # expanded by the inner shell
inside='
set -euo pipefail
root=$1 rustup_home=$2 cargo_bin=$3 out=$4
mount --make-rprivate /
hostname fresh-debian
# The root a mount point of its own, as / is on a machine (ip netns exec remounts it).
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mkdir -p "$root/run/lock"
mount --bind -o ro "$rustup_home" "$root/home/dev/.rustup"
mount --bind -o ro "$cargo_bin" "$root/home/dev/.cargo/bin"
# This machine trusts a few more certificate authorities than a stock Debian; lend its bundle.
mount --bind -o ro /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

as_dev() { chroot "$root" runuser -l dev -c "cd ~/nsagent && $1"; }
in_root() { chroot "$root" "$@"; }
running() { grep -lx "$1" "$root"/proc/[0-9]*/comm 2>/dev/null || true; }

# (grep without -q below: under pipefail, a grep that quits early can fail ip with SIGPIPE.)
echo "+ sudo scripts/quickstart.sh"
as_dev "sudo scripts/quickstart.sh"
in_root ip -n ns1 -o addr show veth1 | grep "inet 192.168.22.1/24" >/dev/null || { echo "veth1 lacks 192.168.22.1/24 in ns1"; exit 1; }
in_root ip -n ns2 -o addr show veth2 | grep "inet 192.168.22.2/24" >/dev/null || { echo "veth2 lacks 192.168.22.2/24 in ns2"; exit 1; }
in_root ip netns exec ns1 ping -c 1 -W 5 192.168.22.2
[ "$(in_root stat -c %U /home/dev/nsagent/target/release/nsagent)" = dev ] || { echo "the build was not done as dev"; exit 1; }
[ -z "$out" ] || cp "$root"/home/dev/nsagent/target/release/nsagent "$root"/home/dev/nsagent/target/release/nsagent-ctl "$out"/
echo "+ sudo scripts/quickstart.sh stop"
as_dev "sudo scripts/quickstart.sh stop"
for _ in $(seq 50); do
    [ -z "$(running nsagent)$(running etcd)" ] && break
    sleep 0.1
done
[ -z "$(running nsagent)$(running etcd)" ] || { echo "still running after stop: nsagent/etcd"; exit 1; }
'
out=${NSAGENT_FRESH_BIN_DIR:-}
[ -z "$out" ] || mkdir -p "$out"
phase "running the quickstart as dev (log: $work/quickstart.log)"
# In the background, so that a signal to this script is handled at once (by cleanup).
nsenter --net="$netns" unshare --mount --pid --uts --fork --kill-child -- \
    bash -c "$inside" inside "$root" "$rustup_home" "$cargo_bin" "$out" >"$work/quickstart.log" 2>&1 &
inner_pid=$!
status=0
wait "$inner_pid" || status=$?
inner_pid=""
if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/quickstart.log" >&2
    die "FAILED after $((SECONDS - started)) s (NSAGENT_FRESH_KEEP=1 keeps the root and $work/quickstart.log)"
fi
grep -E '^(quickstart|install-deps|etcd|nsagent):|^\+ |packets transmitted' "$work/quickstart.log" >&2 || true
phase "passed: the first command works on a minimal Debian 12 with only rustup's Rust"
