#!/usr/bin/env bash
# Builds (once) and prints the path of a Debian trixie rootfs that holds the
# real consumers of windlass output: Podman's quadlet, systemd-analyze, nix-bin
# and Guile. The rootfs is cached, keyed by its package list, so later runs are
# instant. With --check it builds nothing: exit 0 (and the path) if built. Never touches the host's apt sources: trixie lives only in the rootfs.
set -euo pipefail
PKGS="podman,systemd,systemd-sysv,dbus,nix-bin,guile-3.0,ca-certificates,nats-server,guile-gcrypt,guile-json,guile-sqlite3,guile-zlib,guile-lzlib,guile-git,guile-gnutls,guile-ssh,guile-zstd,guile-fibers"
cache="${WINDLASS_CACHE:-/var/cache/windlass}"
key=$(printf '%s\n' "$PKGS" "v1" | sha256sum | cut -c1-12)
dir="$cache/oracle-rootfs-$key"
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
# --check: say whether it is built, build nothing.
if [ "${1:-}" = "--check" ]; then exit 1; fi
if ! command -v mmdebstrap >/dev/null; then
  apt-get update -q >&2 && apt-get install -y -q mmdebstrap >&2
fi
mkdir -p "$cache"
# One builder at a time: parallel tests may all ask for the rootfs at once.
exec 9>"$cache/.oracle-rootfs.lock"
flock 9
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mmdebstrap --variant=minbase --include="$PKGS" trixie "$tmp" http://deb.debian.org/debian >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
