#!/usr/bin/env bash
# Local stand-ins for the three public images the stack starts from, built from Debian's packages alone (for machines
# that reach Debian's archive and the package indexes but no image registry). Each is built once and kept:
#   studio-local/python:3.11-bookworm    for python:3.11-slim-bookworm (Debian's python3 3.11 with venv)
#   studio-local/redis:7-bookworm        for redis:7-alpine            (Debian's redis-server 7.0)
#   studio-local/postgres:15-bookworm    for postgres:15-alpine        (Debian's postgresql-15, same POSTGRES_* env)
# The base is a debootstrap minbase of bookworm; the CA certificates of the machine that builds it are added (an
# egress proxy's own CA included), so pip and npm inside verify what the host verifies.
# Usage: docker/debian/images.sh [--rebuild]
set -euo pipefail
cd "$(dirname "$0")"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=studio-local/debian:bookworm

have() { [[ ${1:-} != --rebuild ]] && docker image inspect "$2" >/dev/null 2>&1; }

if ! have "${1:-}" "$BASE"; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
  root=$(mktemp -d /tmp/studio-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$MIRROR" >/dev/null
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" update-ca-certificates >/dev/null
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  tar -C "$root" -c . | docker import \
    -c 'ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    -c 'CMD ["bash"]' - "$BASE" >/dev/null
  echo "built $BASE (debootstrap minbase)"
fi

build() {  # name, Dockerfile
  if ! have "${REBUILD:-}" "$1"; then
    docker build --network host -q -f "$2" -t "$1" --build-arg BASE="$BASE" . >/dev/null
    echo "built $1"
  fi
}
REBUILD=${1:-}
build studio-local/python:3.11-bookworm python.Dockerfile
build studio-local/redis:7-bookworm redis.Dockerfile
build studio-local/postgres:15-bookworm postgres.Dockerfile
