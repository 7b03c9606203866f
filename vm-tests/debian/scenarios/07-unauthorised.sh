# Scenario 8 of issue 5, unauthorised caller: a non-root user outside the
# group is refused on every mutating method over the real system bus (the
# installed policy and windlassd's own check), and nothing changes.
set -u
out=$1
windlassctl --json status > "$out/before.json"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- windlassctl "$@"; }
nobody status > /dev/null 2>&1; echo "status $?" > "$out/rcs"
for c in "stage /host/data/gen-a" "switch 2" "rollback 2" "confirm 000000000001x000" "cancel 000000000001x000"; do
  nobody $c > /dev/null 2> "$out/err-${c%% *}"
  echo "${c%% *} $?" >> "$out/rcs"
done
windlassctl --json status > "$out/after.json"
true
