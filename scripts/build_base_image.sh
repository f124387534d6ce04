#!/usr/bin/env bash
# Makes a Debian bookworm base image with Python 3.11 from Debian's own packages and
# imports it into podman, for building the Dockerfile where no registry image can be
# pulled: `podman build --build-arg BASE_IMAGE=<name> ...`. Bookworm is the release
# python:3.11-slim-bookworm (the Dockerfile's default base) is built on, so the
# wheels installed on either base are the same.
#
#   scripts/build_base_image.sh [NAME]        (root; needs debootstrap and podman)
#
# Does nothing when NAME already exists (the tests name it after this file's content,
# so a change here builds a new base). DEBIAN_MIRROR overrides the mirror.
set -euo pipefail

name="${1:-localhost/friday-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$name"; then
    echo "base image $name exists"
    exit 0
fi

root="$(mktemp -d /var/tmp/friday-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
# minbase: dpkg, apt and the Essential set; python3-venv brings ensurepip (pip for the
# build stage's venv), ca-certificates lets that pip reach PyPI over TLS.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null
# Downloaded .debs and package lists are only needed to install more packages.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --quiet - "$name" >/dev/null
echo "built base image $name"
