#!/usr/bin/env bash
# Installs the Debian packages that nsagent's tests and quickstart need (etcd, iproute2,
# protoc with the well-known types (libprotobuf-dev), ping, busybox, docker.io for the private dockerd of the microservice tests,
# and graphviz, whose `dot` renders GET /graph?format=svg and `nsagent-ctl graph --svg`).
# Does nothing when they are all installed already.
set -euo pipefail

packages=(etcd-server etcd-client iproute2 protobuf-compiler libprotobuf-dev iputils-ping busybox-static docker.io graphviz)

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
