#!/usr/bin/env bash
# Make a small local Python base image (Debian bookworm + python3 + venv + pip),
# with no registry pull: debootstrap a root filesystem, then `docker import` it.
# Cached by name: when the image already exists this does nothing, so it is built
# once per machine. The image tests and CI build the project image FROM.
#
# Usage: scripts/base_image.sh [IMAGE]   (default: $HK_TEST_BASE_IMAGE or
#        hello-kubeflow-base:bookworm). Needs root, debootstrap and a Docker engine.
set -euo pipefail

IMAGE="${1:-${HK_TEST_BASE_IMAGE:-hello-kubeflow-base:bookworm}}"
SUITE="${HK_BASE_SUITE:-bookworm}"
MIRROR="${HK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-venv,python3-pip,ca-certificates"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE already exists (cached)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }

ROOTFS="$(mktemp -d /tmp/hk-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
started=$SECONDS
echo "debootstrap $SUITE ($PACKAGES) into $ROOTFS ..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
    > "$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"
# What a container image does not need: downloaded .debs, apt lists, docs, logs.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/var/log/*.log

tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $SUITE + $PACKAGES" \
    - "$IMAGE" >/dev/null
echo "built base image $IMAGE in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
