#!/usr/bin/env bash
# Builds (once) and prints the path of a Debian rootfs holding the real
# consumers of windlass output. By default Debian trixie: Podman 5.4's
# quadlet, systemd-analyze, nix-bin and Guile (with the Guile libraries the
# real Guix needs). With --podman6: sid with Debian experimental's podman
# (6.1.1 when this was written) and sid's systemd, for the `--podman-version
# 6.x` output. Each rootfs is cached, keyed by its suite and package list,
# so later runs are instant. With --check it builds nothing: exit 0 (and
# the path) if built. Never touches the host's apt sources: other suites
# live only in the rootfs.
#
# The Debian archive this machine reaches serves sid and experimental with
# Release files past their Valid-Until date (the archive is a snapshot), so
# for --podman6 apt is told not to check that date; signatures are still
# checked.
# Usage: tools/oracle-rootfs.sh [--podman6] [--check]
set -euo pipefail
podman6=
if [ "${1:-}" = "--podman6" ]; then podman6=1; shift; fi
if [ -n "$podman6" ]; then
  PKGS="podman/experimental,systemd"
  name=podman6-rootfs
  key=$(printf '%s\n' "$PKGS" "sid+experimental v1" | sha256sum | cut -c1-12)
else
  PKGS="podman,systemd,systemd-sysv,dbus,nix-bin,guile-3.0,ca-certificates,nats-server,guile-gcrypt,guile-json,guile-sqlite3,guile-zlib,guile-lzlib,guile-git,guile-gnutls,guile-ssh,guile-zstd,guile-fibers"
  name=oracle-rootfs
  key=$(printf '%s\n' "$PKGS" "v1" | sha256sum | cut -c1-12)
fi
# Builds the rootfs into $1.
bootstrap() {
  if [ -n "$podman6" ]; then
    mmdebstrap --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
      --include="$PKGS" sid "$1" \
      "deb http://deb.debian.org/debian sid main" \
      "deb http://deb.debian.org/debian experimental main" >&2
    local version
    version=$(chroot "$1" /usr/libexec/podman/quadlet -version)
    case "$version" in
      6.*) ;;
      *) echo "tools/oracle-rootfs.sh: quadlet $version is not Podman 6" >&2; return 1 ;;
    esac
  else
    mmdebstrap --variant=minbase --include="$PKGS" trixie "$1" http://deb.debian.org/debian >&2
  fi
}
cache="${WINDLASS_CACHE:-/var/cache/windlass}"
dir="$cache/$name-$key"
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
# --check: say whether it is built, build nothing.
if [ "${1:-}" = "--check" ]; then exit 1; fi
if ! command -v mmdebstrap >/dev/null; then
  apt-get update -q >&2 && apt-get install -y -q mmdebstrap >&2
fi
mkdir -p "$cache"
# One builder at a time: parallel tests may all ask for the rootfs at once.
exec 9>"$cache/.$name.lock"
flock 9
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
tmp="$dir.tmp.$$"
rm -rf "$tmp"
bootstrap "$tmp"
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
