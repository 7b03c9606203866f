# Scenario 2b, a host's first switch goes red (issue 22): windlassd on a
# host that never ran a windlass generation switches to generation C
# (web's health check fails). The switch is rolled back to *no*
# generation: no app unit is active or even loaded, no windlass link or
# revert unit is left, the generation's Podman network is removed and its
# volume kept, and a Rollback is refused (nothing to roll back to).
# Checks its own facts; ends by removing the agent's state so the next
# scenarios start on a host that never ran windlass.
set -u
out=$1
fail=0
no() { echo "FAIL: $*"; fail=1; }
t0=$(date +%s)
at() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
sh /host/install-agent.sh
at "agent installed"
c=$(windlassctl stage /host/data/gen-c)
at "staged"
windlassctl --json switch "$c" --deadline 12 > "$out/switch.json" 2> "$out/switch.err"
rc=$?
at "switch ended"
cat "$out/switch.json" "$out/switch.err"
[ "$rc" = 3 ] || no "switch exited $rc, not 3 (rolled back)"
grep -q '"result":"rolled-back"' "$out/switch.json" || no "the switch did not end rolled-back"
grep -q 'no windlass generation runs now' "$out/switch.json" || no "the outcome does not say that no generation runs"
for u in db.service web.service web-stamp.timer web-stamp.service vmnet-network.service vmdata-volume.service; do
  st=$(systemctl show -p LoadState,ActiveState "$u" | tr '\n' ' ')
  echo "$u: $st"
  case "$st" in
    *LoadState=not-found*ActiveState=inactive*|*ActiveState=inactive*LoadState=not-found*) ;;
    *) no "$u is still there: $st" ;;
  esac
done
loaded=$(systemctl list-units --all --no-legend --plain 'db.*' 'web.*' 'web-*' 'vmnet*' 'vmdata*' 'windlass-revert*')
[ -z "$loaded" ] || no "units still loaded: $loaded"
[ ! -e /run/windlass/current ] && [ ! -L /run/windlass/current ] || no "/run/windlass/current is still there"
[ ! -e /var/lib/windlass/profiles/system ] || no "a generation was selected"
windlassctl --json status > "$out/status.json"
cat "$out/status.json"
grep -q '"running":"1"' "$out/status.json" && no "status says generation 1 runs"
running=$(podman ps -q --filter name='^(db|web)$')
[ -z "$running" ] || no "containers still running: $running"
podman network exists vmnet && no "the generation's network vmnet was not removed"
podman volume exists vmdata || no "the volume vmdata (data is kept) is gone"
if windlassctl rollback > "$out/rollback.out" 2>&1; then
  no "a rollback with nothing to roll back to was accepted"
fi
cat "$out/rollback.out"
grep -q 'nothing to roll back to' "$out/rollback.out" || no "the rollback refusal does not say why"
at "checked"
# A host that never ran windlass again, for the scenarios after this one.
systemctl stop windlassd.service
rm -rf /var/lib/windlass /run/windlass
podman volume rm -f vmdata >/dev/null 2>&1
systemctl daemon-reload
systemctl start windlassd.service
at "state reset"
exit $fail
