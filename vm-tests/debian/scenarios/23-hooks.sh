# Scenario 23, lifecycle hooks (issue 20) with real units and containers:
# H1's db has a pre_commit hook (a migration stand-in that appends `h1`
# to /data/schema in db's volume) and a down hook that removes it. H2
# changes db and web: db's pre_commit appends `h2`, then web's pre_commit
# fails (exit 3), so the switch rolls back and H2's db down hook removes
# `h2`; H1 runs again. Each hook runs in a transient unit as a
# `podman run` of the app's image with the app's volume and network.
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
exit $fail
