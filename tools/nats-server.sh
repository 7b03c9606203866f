#!/usr/bin/env bash
# Prints the path of a nats-server (>= 2.10, JetStream) for the fleet tests:
# Debian trixie's nats-server from the oracle rootfs (tools/oracle-rootfs.sh
# builds it once and caches it; nats-server is in its package list). It is a
# Go binary linked against libc only, so it runs on the bookworm host as it is
# (checked with --version below); the host's apt sources are never touched.
# Exit 1 (and a reason on stderr) when there is no usable binary. With
# --check it builds nothing: it only looks.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--check" ]; then
  rootfs=$(tools/oracle-rootfs.sh --check) || { echo "tools/nats-server.sh: the oracle rootfs is not built" >&2; exit 1; }
else
  rootfs=$(tools/oracle-rootfs.sh)
fi
# Debian installs it as /usr/sbin/nats-server.
bin=
for b in "$rootfs/usr/sbin/nats-server" "$rootfs/usr/bin/nats-server"; do
  if [ -x "$b" ]; then bin=$b; break; fi
done
if [ -z "$bin" ]; then
  echo "tools/nats-server.sh: no nats-server in $rootfs (usr/sbin or usr/bin)" >&2
  exit 1
fi
# The floor is 2.10: older servers accept concurrent CAS writes (nats-server#4320).
version=$("$bin" --version 2>&1) || { echo "tools/nats-server.sh: $bin --version failed: $version" >&2; exit 1; }
case "$version" in
  *v2.1[0-9].*|*v2.[2-9][0-9].*|*v[3-9].*) ;;
  *) echo "tools/nats-server.sh: $bin is $version; 2.10 or newer is needed" >&2; exit 1 ;;
esac
echo "$bin"
