#!/usr/bin/env bash
# Make a local stand-in for ghcr.io/astral-sh/uv:<version>: an image from scratch
# holding the static (musl) uv and uvx binaries of that release's PyPI wheel.
# Usage: UV=<uv binary> uv-image.sh <version> <image-name>
set -euo pipefail
version=$1 name=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# pip, run by uv: the Python on PATH may be a venv without pip.
"${UV:-uv}" tool run pip download --quiet --no-deps --only-binary=:all: \
    --platform "musllinux_1_1_$(uname -m)" "uv==$version" -d "$work/wheel"
"${UV:-uv}" run --no-project python -m zipfile -e "$work"/wheel/uv-*.whl "$work/unpacked"
mkdir "$work/context"
install -m 0755 "$work"/unpacked/uv-*.data/scripts/uv "$work"/unpacked/uv-*.data/scripts/uvx "$work/context/"
printf 'FROM scratch\nCOPY uv uvx /\nENTRYPOINT ["/uv"]\n' >"$work/context/Dockerfile"
podman build --quiet --pull=never -t "$name" "$work/context" >/dev/null
echo "made $name"
