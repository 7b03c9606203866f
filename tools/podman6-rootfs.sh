#!/usr/bin/env bash
# Builds (once) and prints the path of a Debian rootfs holding Podman 6's
# quadlet: Debian experimental's podman (6.1.1 when this was written) on
# sid, with sid's systemd. The Quadlet oracle tests run the generator's
# `--podman-version 6.x` output through it (generator/tests/oracle_quadlet.rs),
# beside trixie's Podman 5.4 (tools/oracle-rootfs.sh). Cached like that one,
# keyed by its package list; with --check it builds nothing: exit 0 (and the
# path) if built. Never touches the host's apt sources.
#
# The Debian archive this machine reaches serves sid and experimental with
# Release files past their Valid-Until date (the archive is a snapshot), so
# apt is told not to check that date; signatures are still checked.
set -euo pipefail
PKGS="podman/experimental,systemd"
cache="${WINDLASS_CACHE:-/var/cache/windlass}"
key=$(printf '%s\n' "$PKGS" "sid+experimental v1" | sha256sum | cut -c1-12)
dir="$cache/podman6-rootfs-$key"
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
if [ "${1:-}" = "--check" ]; then exit 1; fi
if ! command -v mmdebstrap >/dev/null; then
  apt-get update -q >&2 && apt-get install -y -q mmdebstrap >&2
fi
mkdir -p "$cache"
exec 9>"$cache/.podman6-rootfs.lock"
flock 9
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mmdebstrap --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
  --include="$PKGS" sid "$tmp" \
  "deb http://deb.debian.org/debian sid main" \
  "deb http://deb.debian.org/debian experimental main" >&2
version=$(chroot "$tmp" /usr/libexec/podman/quadlet -version)
case "$version" in
  6.*) ;;
  *) echo "tools/podman6-rootfs.sh: quadlet $version is not Podman 6" >&2; exit 1 ;;
esac
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
