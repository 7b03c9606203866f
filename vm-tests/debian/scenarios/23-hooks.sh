# Scenario 23, lifecycle hooks (issue 20) with real units and containers:
# H1's db has a pre_commit hook (a migration stand-in that appends `h1`
# to /data/schema in db's volume) and a down hook that removes it. H2
# changes db and web: db's pre_commit appends `h2`, then web's pre_commit
# fails (exit 3), so the switch rolls back and H2's db down hook removes
# `h2`; H1 runs again. Each hook runs in a transient unit as a
# `podman run` of the app's image with the app's volume and network.
# Then the agent is killed during H3's long db hook, and last H4's
# scratch app is removed with its data (see below).
# Checks its own facts.
set -u
out=$1
fail=0
no() { echo "FAIL: $*"; fail=1; }
t0=$(date +%s)
at() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
sh /host/install-agent.sh
schema() {
  mp=$(podman volume inspect --format '{{.Mountpoint}}' vmdata 2>/dev/null) || return 0
  cat "$mp/schema" 2>/dev/null | tr '\n' ' '
}
# A clean start: no schema from an earlier run of this scenario.
if podman volume exists vmdata; then
  rm -f "$(podman volume inspect --format '{{.Mountpoint}}' vmdata)/schema"
fi
h1=$(windlassctl stage /host/data/gen-h1)
h2=$(windlassctl stage /host/data/gen-h2)
windlassctl switch "$h1" > "$out/switch-h1.out" 2>&1
rc=$?
cat "$out/switch-h1.out"
[ "$rc" = 0 ] || no "the switch to H1 exited $rc"
at "switched to H1"
[ "$(schema)" = "h1 " ] || no "after H1, the schema is '$(schema)', not 'h1'"

windlassctl switch "$h2" > "$out/switch-h2.out" 2>&1
rc=$?
cat "$out/switch-h2.out"
at "switch to H2 ended ($rc)"
[ "$rc" = 3 ] || no "the switch to H2 exited $rc, not 3 (rolled back)"
grep -q "hook pre-commit of web failed: exit status 3" "$out/switch-h2.out" \
  || no "the switch to H2 does not name web's failed pre-commit hook"
[ "$(schema)" = "h1 " ] || no "after H2 rolled back, the schema is '$(schema)', not 'h1' (down hook)"
windlassctl --json status > "$out/status.json"
grep -q "\"running\": *\"$h1\"" "$out/status.json" || no "H1 does not run again: $(cat "$out/status.json")"
for u in db web; do
  systemctl is-active -q "$u.service" || no "$u.service is not active after the rollback"
done
# The hooks ran in transient units, each logged in the journal under its
# own unit, and none is left loaded.
journalctl --no-pager -o cat -u 'windlass-hook-*' > "$out/hooks.journal" 2>&1
grep -q "web pre-commit fails on purpose" "$out/hooks.journal" \
  || no "web's hook output is not in the journal of its unit"
left=$(systemctl list-units --all --no-legend --plain 'windlass-hook-*' | grep -c .)
[ "$left" = 0 ] || no "hook units left loaded: $(systemctl list-units --all --no-legend --plain 'windlass-hook-*')"
podman ps -a --format '{{.Names}}' | grep -q -- '-hook-' && no "a hook container was left: $(podman ps -a --format '{{.Names}}')"
# The operation's story: hooks as phases, and the journal fields.
journalctl --no-pager -o cat WINDLASS_HOOK=down > "$out/down.journal" 2>&1
grep -q "db-hook-down" "$out/down.journal" \
  || no "the agent did not log the down hook's output with WINDLASS_HOOK=down"
at "checked"

# A restart during a long hook: H3's db pre_commit hook takes 10 s; the
# agent is killed (SIGKILL) while it runs in its transient unit. The
# restarted agent is on the bus at once (busy, the hook still running),
# waits for that run instead of starting it again, then resolves the
# interrupted switch as every restart does: rolled back, H3's db down
# hook undoing the migration.
h3=$(windlassctl stage /host/data/gen-h3)
mp=$(podman volume inspect --format '{{.Mountpoint}}' vmdata)
rm -f "$mp/h3-runs"
windlassctl switch "$h3" --no-wait > "$out/switch-h3.out" 2>&1
op=$(sed -n 's#.*/operation/##p' "$out/switch-h3.out")
i=0
until [ -s "$mp/h3-runs" ]; do
  i=$((i+1)); [ $i -gt 1500 ] && break; sleep 0.2
done
[ -s "$mp/h3-runs" ] || no "H3's db pre-commit hook never started"
at "H3's db hook runs: killing windlassd"
systemctl kill -s KILL windlassd.service
sleep 1
i=0
until systemctl is-active -q windlassd.service; do
  i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.2
done
at "windlassd is back ($(systemctl is-active windlassd.service))"
hook_unit="windlass-hook-$op-pre-commit-db.service"
state_back=$(systemctl is-active "$hook_unit")
echo "$state_back" > "$out/hook-unit-when-back"
[ "$state_back" = activating ] \
  || no "the agent was not on the bus before the hook ended: $hook_unit is $state_back"
agent_state() { busctl get-property io.windlass.Agent1 /io/windlass/Agent1 io.windlass.Agent1 State 2>/dev/null; }
[ "$(agent_state)" = 's "busy"' ] || no "the restarted agent is not busy while it recovers: $(agent_state)"
i=0
until [ "$(agent_state)" = 's "idle"' ]; do
  i=$((i+1)); [ $i -gt 1500 ] && break; sleep 0.2
done
at "recovery done"
cp "/var/lib/windlass/operations/$op.json" "$out/h3-op.json" 2>/dev/null
grep -q '"result": *"rolled-back"' "$out/h3-op.json" \
  || no "the interrupted switch to H3 is not rolled back: $(cat "$out/h3-op.json")"
runs=$(grep -c start "$mp/h3-runs")
[ "$runs" = 1 ] || no "H3's db hook ran $runs times: the restarted agent started it again"
[ "$(schema)" = "h1 " ] || no "after H3 rolled back, the schema is '$(schema)', not 'h1'"
windlassctl --json status > "$out/status-h3.json"
grep -q "\"running\": *\"$h1\"" "$out/status-h3.json" || no "H1 does not run after H3: $(cat "$out/status-h3.json")"
at "checked the restart"

# Data purged with its app: H4 adds `scratch` (update.on_remove =
# "purge-data", volume vmscratch); the switch back to H1 removes it, and
# once that switch has committed, its volume is removed by Podman.
h4=$(windlassctl stage /host/data/gen-h4)
windlassctl switch "$h4" > "$out/switch-h4.out" 2>&1 || no "the switch to H4 failed: $(cat "$out/switch-h4.out")"
podman volume exists vmscratch || no "H4 did not create vmscratch"
windlassctl --json switch "$h1" > "$out/switch-back.json" 2>&1 || no "the switch back to H1 failed: $(cat "$out/switch-back.json")"
podman volume exists vmscratch && no "vmscratch is still there after the switch that removed scratch committed"
podman volume exists vmdata || no "vmdata (db's, kept by default) is gone"
op=$(sed -n 's#.*"operation":"/io/windlass/Agent1/operation/\([^"]*\)".*#\1#p' "$out/switch-back.json")
grep -q '"purging-data"' "/var/lib/windlass/operations/$op.json" \
  || no "the switch back to H1 has no purging-data phase: $(cat "/var/lib/windlass/operations/$op.json")"
at "checked the purge"
exit $fail
