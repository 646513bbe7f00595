#!/usr/bin/env bash
# Installs the Debian packages nsagent needs; does nothing when they are all installed.
#
#   install-deps.sh quickstart   building and running the agent (scripts/quickstart.sh):
#                                a C linker (gcc, libc6-dev), protoc with the well-known
#                                types (protobuf-compiler, libprotobuf-dev), TLS roots for
#                                crates.io, etcd, iproute2 and ping
#   install-deps.sh [all]        also what the tests and .ci/run use: docker.io and a static
#                                busybox (private dockerd, test images), docker-compose (the
#                                compose test), debootstrap and slirp4netns (the fresh-machine
#                                check), systemd-container (the systemd unit check), and
#                                graphviz, whose `dot` renders GET /graph?format=svg and
#                                `nsagent-ctl graph --svg` (install it by hand to use those)
set -euo pipefail

quickstart=(ca-certificates gcc libc6-dev protobuf-compiler libprotobuf-dev
    etcd-server etcd-client iproute2 iputils-ping)
tests=(busybox-static docker.io docker-compose debootstrap slirp4netns systemd-container graphviz)

case "${1:-all}" in
quickstart) packages=("${quickstart[@]}") ;;
all) packages=("${quickstart[@]}" "${tests[@]}") ;;
*)
    echo "usage: $0 [quickstart|all]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present (${packages[*]})"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
