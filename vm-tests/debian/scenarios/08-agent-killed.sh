# Scenario 5 of issue 5, agent killed mid-switch. Generation D's web
# becomes healthy only seconds after it starts, which holds the switch in
# its activation long enough to kill the agent there, for certain.
#  1. SIGKILL to windlassd while a switch to D activates: systemd restarts
#     the agent, whose recovery rolls the switch back (record: rolled-back,
#     "interrupted during activating"); generation A runs again.
#  2. The same, but the agent stays down (a runtime drop-in Restart=no):
#     the revert timer the switch armed outside the agent (deadline 5 s +
#     60 s) fires `windlassd --revert`, which rolls back from the record.
set -u
out=$1
ops=/var/lib/windlass/operations
field() { sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$ops/$1.json" 2>/dev/null; }
# Waits (up to $2 tenths of a second) until operation $1 is in activating
# or health-gate, then kills the agent with SIGKILL; writes the phase seen.
kill_in_activation() {
  i=0
  while [ $i -lt "$2" ]; do
    p=$(field "$1" phase)
    case "$p" in activating|health-gate) break ;; esac
    sleep 0.1
    i=$((i + 1))
  done
  pid=$(systemctl show -p MainPID --value windlassd.service)
  kill -KILL "$pid"
  echo "$p $pid"
}
# Waits (up to $2 s) until operation $1 has a result.
wait_finished() {
  i=0
  while [ $i -lt "$2" ]; do
    r=$(field "$1" result)
    [ -n "$r" ] && [ "$r" != null ] && return 0
    sleep 1
    i=$((i + 1))
  done
  return 1
}
facts() {
  readlink /run/windlass/current > "$out/current-$1"
  readlink /var/lib/windlass/profiles/system > "$out/selected-$1"
  systemctl show -p MainPID,ActiveState web.service > "$out/web-$1.show"
  podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' web > "$out/web-env-$1"
  systemctl list-units --all --no-pager --plain 'windlass-revert*' > "$out/revert-units-$1"
}
# A, selected and running (a no-op after scenario 07).
windlassctl switch 1 > /dev/null 2>&1
d=$(windlassctl stage /host/data/gen-d)
echo "$d" > "$out/generation"

# 1. Killed, restarted by systemd.
op=$(windlassctl switch "$d" --no-wait)
id=${op##*/}
echo "$id" > "$out/op1"
kill_in_activation "$id" 600 > "$out/killed1"
wait_finished "$id" 300
# The restarted agent writes the resolved record during its recovery,
# before it is on the bus and tells systemd it is ready: wait for that.
i=0
while [ $i -lt 120 ] && [ "$(systemctl show -p ActiveState --value windlassd.service)" != active ]; do
  sleep 0.5
  i=$((i + 1))
done
cp "$ops/$id.json" "$out/op1.json"
systemctl show -p MainPID,ActiveState,NRestarts windlassd.service > "$out/windlassd-1.show"
windlassctl watch "$id" > "$out/watch1.out" 2> "$out/watch1.err"
echo $? > "$out/watch1.rc"
windlassctl --json status > "$out/status-1.json"
facts 1

# 2. Killed and kept down: the external revert brings A back.
mkdir -p /run/systemd/system/windlassd.service.d
printf '[Service]\nRestart=no\n' > /run/systemd/system/windlassd.service.d/stay-down.conf
systemctl daemon-reload
start=$(date +%s)
op=$(windlassctl switch "$d" --deadline 5 --no-wait)
id=${op##*/}
echo "$id" > "$out/op2"
kill_in_activation "$id" 600 > "$out/killed2"
sleep 2
systemctl show -p ActiveState windlassd.service > "$out/windlassd-down.show"
systemctl list-timers --all --no-pager "windlass-revert-$id*" > "$out/revert-timer"
wait_finished "$id" 240
echo $(( $(date +%s) - start )) > "$out/elapsed2"
cp "$ops/$id.json" "$out/op2.json"
systemctl show -p ActiveState windlassd.service > "$out/windlassd-2.show"
journalctl --no-pager -o cat -u "windlass-revert-$id.service" > "$out/revert.journal"
facts 2
rm -r /run/systemd/system/windlassd.service.d
systemctl daemon-reload
systemctl reset-failed windlassd.service
systemctl start windlassd.service
windlassctl --json status > "$out/status-2.json"
journalctl --no-pager -o cat -u windlassd.service > "$out/windlassd.journal"
true
