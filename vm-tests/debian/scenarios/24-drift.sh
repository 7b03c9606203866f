# Scenario 24, drift (issue 21) with real systemd, Podman and inotify:
# generation DR runs web (policy `restore`) and db (policy `report`).
# `systemctl edit` on db's unit is reported as a drop-in (DriftDetected
# on the system bus, Status, the journal's WINDLASS_DRIFT) and left
# alone; removing web's Quadlet file is reported and restored on its own
# (each report within 5 s here, 2 s the goal: see limit_ms): the file back byte for
# byte, web healthy again, db untouched. A mask is reported too. Checks
# its own facts; prints the latencies.
set -u
out=$1
fail=0
no() { echo "FAIL: $*"; fail=1; }
t0=$(date +%s)
at() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
sh /host/install-agent.sh
dr=$(windlassctl stage /host/data/gen-dr)
windlassctl switch "$dr" > "$out/switch.out" 2>&1 || no "the switch to DR failed: $(cat "$out/switch.out")"
at "switched to DR ($dr)"
windlassctl drift --check > "$out/drift-clean.json" 2>&1 || no "drift right after the switch: $(cat "$out/drift-clean.json")"
stdbuf -oL busctl --system --json=short monitor \
  --match "type='signal',interface='io.windlass.Agent1',member='DriftDetected'" \
  > "$out/signals.json" 2> "$out/monitor.err" &
mon=$!
sleep 1
db_before=$(systemctl show -p MainPID,ActiveEnterTimestampMonotonic db.service)
now_us() { echo $(( $(date +%s%N) / 1000 )); }
# When $1 was written (its own mtime, of a link itself), in µs: the
# latency is from the change on disk, not from the start of the command
# that made it (systemctl's own start takes a second under TCG).
mtime_us() { stat -c %.6Y "$1" | tr -d .; }
# When $1 last got its name or content (its ctime, in µs): `systemctl
# edit` writes a temporary file and renames it into place, and a rename
# keeps the mtime of the write, so under emulation the mtime can be
# seconds before the drop-in exists at its path (one run measured 3.5 s
# from it); the rename sets the ctime.
ctime_us() { stat -c %.6Z "$1" | tr -d .; }
# The goal is 2 s (BENCHMARKS.md; the runs here print 0.3-1.1 s). The
# emulated guest is slower and uneven. The edit below comes while the
# full scan the switch's end brings may still be inspecting containers
# (seconds each under TCG); two CI runs reported the drop-in after 3.5 s
# and 9.6 s while that scan held the task, before its slow half ran beside
# the events. The bound proves the event path all the same: without an
# event nothing scans before the drift-scan timer (hours) and the debounce
# caps at 1 s.
limit_ms=5000
# Waits (up to 10 s) for a DriftDetected signal after $1 (µs) whose
# findings hold $2; prints its delay in ms, from the signal's own
# timestamp (busctl's), else from when it was seen.
wait_signal() {
  i=0
  while [ $i -lt 200 ]; do
    line=$(grep -F -- "$2" "$out/signals.json" | while read -r l; do
      ts=$(printf '%s' "$l" | sed -n 's/.*"timestamp-realtime":\([0-9]*\).*/\1/p')
      if [ -z "$ts" ] || [ "$ts" -ge "$1" ]; then printf '%s\n' "${ts:-0}"; break; fi
    done)
    if [ -n "$line" ]; then
      [ "$line" = 0 ] && line=$(now_us)
      echo $(( (line - $1) / 1000 ))
      return 0
    fi
    i=$((i+1)); sleep 0.05
  done
  return 1
}

# 1. `systemctl edit` of db (report only).
printf '[Service]\nEnvironment=DRIFT_TEST=1\n' | systemctl edit --stdin db.service
t=$(ctime_us /etc/systemd/system/db.service.d/override.conf)
echo "override.conf: written $(( ($t - $(mtime_us /etc/systemd/system/db.service.d/override.conf)) / 1000 )) ms before it got its name" | tee "$out/dropin-rename"
ms=$(wait_signal "$t" "db.service.d/override.conf") || { no "no DriftDetected for db's drop-in"; ms=-1; }
echo "drop-in-added $ms ms" | tee "$out/latency-dropin"
[ "$ms" -ge 0 ] && [ "$ms" -le "$limit_ms" ] || no "db's drop-in reported after $ms ms (limit $limit_ms)"
windlassctl --json status > "$out/status-dropin.json"
grep -q '"drop-in-added"' "$out/status-dropin.json" || no "Status lists no drop-in: $(cat "$out/status-dropin.json")"
journalctl --no-pager -o cat WINDLASS_DRIFT=drop-in-added > "$out/journal-dropin" 2>&1
grep -q "db.service" "$out/journal-dropin" || no "no WINDLASS_DRIFT=drop-in-added journal entry for db"
at "drop-in reported"

# 2. web's Quadlet file removed: reported, then restored on its own.
f=/var/lib/windlass/generations/$dr/quadlet/web.container
want=$(sha256sum /host/data/gen-dr/quadlet/web.container | cut -d' ' -f1)
t=$(now_us)
rm "$f"
ms=$(wait_signal "$t" "quadlet/web.container") || { no "no DriftDetected for web's removed Quadlet file"; ms=-1; }
echo "removed $ms ms" | tee "$out/latency-removed"
[ "$ms" -ge 0 ] && [ "$ms" -le "$limit_ms" ] || no "web's removed file reported after $ms ms (limit $limit_ms)"
# The automatic restore: its record, committed.
i=0; op=
while [ $i -lt 600 ]; do
  op=$(grep -l '"kind": *"restore"' /var/lib/windlass/operations/*.json 2>/dev/null | tail -1)
  [ -n "$op" ] && grep -q '"result": *"committed"' "$op" && break
  [ -n "$op" ] && grep -q '"result": *"failed"' "$op" && break
  i=$((i+1)); sleep 0.2
done
[ -n "$op" ] && cp "$op" "$out/restore-op.json"
grep -q '"result": *"committed"' "$out/restore-op.json" 2>/dev/null \
  || no "web was not restored: $(cat "$out/restore-op.json" 2>/dev/null)"
at "restore ended"
[ -f "$f" ] && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$want" ] || no "web's Quadlet file is not back byte for byte"
systemctl is-active -q web.service || no "web.service is not active after the restore"
busybox wget -q -T 5 -O /dev/null http://127.0.0.1:8080/ || no "web does not answer after the restore"
[ "$(systemctl show -p MainPID,ActiveEnterTimestampMonotonic db.service)" = "$db_before" ] \
  || no "db was restarted by web's restore"
[ -f /etc/systemd/system/db.service.d/override.conf ] || no "db's drop-in (policy report) was touched"

# 3. A mask of db, once the agent is done with the full scan every
# operation's end brings (a scan asked for returns after it: the agent
# scans one at a time; each full scan inspects every container, slow
# under TCG).
windlassctl drift scan > "$out/scan-after-restore.json" 2>&1
systemctl mask db.service > /dev/null 2>&1
t=$(mtime_us /etc/systemd/system/db.service)
ms=$(wait_signal "$t" "masked") || { no "no DriftDetected for db's mask"; ms=-1; }
echo "masked $ms ms" | tee "$out/latency-masked"
[ "$ms" -ge 0 ] && [ "$ms" -le "$limit_ms" ] || no "db's mask reported after $ms ms (limit $limit_ms)"

# Back as it was: unmask, drop the drop-in; the drift clears.
systemctl unmask db.service > /dev/null 2>&1
rm -rf /etc/systemd/system/db.service.d
systemctl daemon-reload
i=0
until windlassctl drift --check > "$out/drift-end.json" 2>&1; do
  i=$((i+1)); [ $i -gt 50 ] && break; sleep 0.2
done
windlassctl drift --check > "$out/drift-end.json" 2>&1 || no "drift left at the end: $(cat "$out/drift-end.json")"
kill $mon 2>/dev/null
journalctl --no-pager -o short-monotonic -u windlassd.service | tail -40 > "$out/windlassd.journal"
at "done"
exit $fail
