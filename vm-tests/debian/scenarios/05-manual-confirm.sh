# Scenario 6 of issue 5, manual confirm: a switch with --confirm manual
# that nobody confirms is reverted at its deadline; a confirmed one commits.
set -u
out=$1
windlassctl switch 1 --confirm manual --deadline 30 > "$out/unconfirmed.out" 2> "$out/unconfirmed.err"
echo $? > "$out/unconfirmed.rc"
windlassctl --json status > "$out/status-unconfirmed.json"
op=$(windlassctl switch 1 --confirm manual --deadline 120 --no-wait)
id=${op##*/}
for i in $(seq 120); do
  busctl --system get-property io.windlass.Agent1 "$op" io.windlass.Operation1 Phase | grep -q waiting-confirm && break
  sleep 1
done
windlassctl confirm "$id"
windlassctl watch "$id" > "$out/confirmed.out" 2> "$out/confirmed.err"
echo $? > "$out/confirmed.rc"
windlassctl --json status > "$out/status-confirmed.json"
true
