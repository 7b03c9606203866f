#!/usr/bin/env bash
# Compiles (once) the real Guix module closure of ../shared/oracles/guix for
# the oracle rootfs's Guile and prints the directory of .go files. Cached
# under /var/cache/windlass, keyed by the module list, the Guix source's
# version, the Guile version and the compile driver, so later runs are
# instant (built again when a Guix source file is newer than the cache:
# Guile would load that module from source). One compiler by default
# (WINDLASS_GUIX_GO_WORKERS=N runs N side by side), at the lowest
# priority unless WINDLASS_GUIX_GO_NICE says otherwise. Measured cold on this 2-core machine: one worker 368 s wall,
# 369 CPU-s; two workers 299 s wall but 568 CPU-s (each loads the package
# modules' import cycles from source), so one is the better neighbour for
# a test suite running beside it. With --check it builds nothing: exit 0
# (and the path) if built.
# Usage: tools/guix-go.sh [--check] [GUIX_ORACLE_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
check=
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
guix=$(cd "${1:-$here/../shared/oracles/guix}" && pwd)
driver=$here/generator/tests/guix-real/compile.scm
root=$("$here/tools/oracle-rootfs.sh")
cache="${WINDLASS_CACHE:-/var/cache/windlass}"
guile_version=$(chroot "$root" guile -c '(display (version))' 2>/dev/null)
key=$( { cat "$guix/modules.txt" "$driver" "$guix/src/guix/config.scm"; \
  echo "$guile_version"; } | sha256sum | cut -c1-12)
dir="$cache/guix-go-$key"
# Guile loads a module from its source, not its .go, when the source is
# newer (a fold then takes minutes, not seconds): a source tree copied
# again after the build makes the cache stale, whatever its key.
fresh() {
  [ -f "$dir/.complete" ] &&
    [ -z "$(find "$guix/src" -name '*.scm' -newer "$dir/.complete" -print -quit)" ]
}
if fresh; then echo "$dir"; exit 0; fi
if [ -n "$check" ]; then exit 1; fi
mkdir -p "$cache"
exec 9>"$cache/.guix-go.lock"
flock 9
if fresh; then echo "$dir"; exit 0; fi
if [ -e "$dir" ]; then
  echo "tools/guix-go.sh: $guix/src is newer than the compiled closure; compiling it again" >&2
  rm -rf "$dir" "$dir.partial"
fi
# A half-built tree is resumed: each .go is written atomically.
tmp="$dir.partial"
mkdir -p "$tmp"
workers=${WINDLASS_GUIX_GO_WORKERS:-1}
started=$SECONDS
pids=()
for ((k = 0; k < workers; k++)); do
  nice -n "${WINDLASS_GUIX_GO_NICE:-19}" "$here/tools/oracle" \
    --bind "$guix:/g" --bind "$tmp:/go" --bind "$(dirname "$driver"):/d" \
    guile --no-auto-compile /d/compile.scm /g /go "$k" "$workers" \
    >"$tmp/.worker-$k.log" 2>&1 &
  pids+=($!)
done
failed=0
for ((k = 0; k < workers; k++)); do
  if ! wait "${pids[$k]}"; then
    failed=1
    tail -30 "$tmp/.worker-$k.log" >&2
  fi
done
if [ "$failed" = 1 ]; then
  echo "tools/guix-go.sh: compiling the Guix closure failed" >&2
  exit 1
fi
want=$(grep -c . "$guix/modules.txt")
have=$(find "$tmp" -name '*.go' | wc -l)
if [ "$have" -ne "$want" ]; then
  echo "tools/guix-go.sh: $have .go files for $want modules" >&2
  exit 1
fi
echo "tools/guix-go.sh: compiled $want modules in $((SECONDS - started)) s" >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
