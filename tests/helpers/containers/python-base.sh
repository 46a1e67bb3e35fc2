#!/usr/bin/env bash
# Make a local stand-in for the official python:<X.Y>-slim-bookworm image, with no
# registry: a Debian bookworm minbase root (debootstrap) plus this machine's own
# CPython <X.Y> build copied to /usr/local, where the official image keeps it.
# Usage: python-base.sh <python-prefix> <X.Y> <image-name>...
set -euo pipefail
prefix=$1 version=$2
shift 2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

# The shared libraries CPython's extension modules link against.
debootstrap --variant=minbase \
    --include=ca-certificates,netbase,tzdata,libssl3,libffi8,libsqlite3-0,zlib1g,libbz2-1.0,liblzma5,libreadline8,libncursesw6,libtinfo6,libuuid1,libgdbm6,libgdbm-compat4,libexpat1,libnsl2,libtirpc3,libdb5.3 \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }

cp -a "$prefix"/. "$root/usr/local/"
# Only pip stays in site-packages, as in the official image.
site=$root/usr/local/lib/python$version/site-packages
find "$site" -mindepth 1 -maxdepth 1 ! -name 'pip' ! -name 'pip-*' ! -name README.txt -exec rm -rf {} +
# Shebangs, sysconfig data and python-config still name the build prefix.
grep -rIl "$prefix" "$root/usr/local" | xargs -r sed -i "s#$prefix#/usr/local#g"
find "$root/usr/local" -depth \( \( -type d -a \( -name test -o -name tests -o -name idle_test -o -name __pycache__ \) \) \
    -o \( -type f -a \( -name '*.pyc' -o -name 'libpython*.a' \) \) \) -exec rm -rf {} +
# libpython lives in /usr/local/lib now; the binary's RUNPATH still names the old prefix.
chroot "$root" /sbin/ldconfig
# Certificate authorities this machine added locally (a TLS-inspecting proxy, say),
# so that uv inside image builds reaches the package index like the host does.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" /usr/sbin/update-ca-certificates >/dev/null
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*

first=$1
tar --numeric-owner -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$first" >/dev/null
for name in "${@:2}"; do podman tag "$first" "$name"; done
podman run --rm "$first" python3 -c "import ssl, sqlite3, ctypes, venv"
echo "made $* from $prefix"
