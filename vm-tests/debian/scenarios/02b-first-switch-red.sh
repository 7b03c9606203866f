# Scenario 2b, a host's first switch goes red (issue 22). windlassd on a
# host that never ran a windlass generation, with a hand-written Quadlet
# file of an app's name (web.container, which Podman's own generator
# turns into web.service): a switch to generation C is refused, naming the
# file; with --take-over it goes ahead (the file set aside), and as C is
# red (web's health check fails) it is rolled back to *no* generation:
# the file is back and defines web.service again, no unit of the
# generation is active or even loaded, no windlass link or revert unit is
# left, the generation's Podman network is removed and its volume kept,
# and a Rollback is refused (nothing to roll back to). Checks its own
# facts; ends by removing the file and the agent's state, so the next
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
# A hand-written Quadlet file of the same name: the switch is refused
# (exit 4) before anything changes, naming the file.
hand=/etc/containers/systemd/hand/web.container
mkdir -p /etc/containers/systemd/hand
printf '[Container]\nImage=localhost/windlass-test/busybox:1.0\n' > "$hand"
systemctl daemon-reload
windlassctl switch "$c" > "$out/collision.out" 2>&1
rc=$?
cat "$out/collision.out"
[ "$rc" = 4 ] || no "a switch onto a hand-written web.container exited $rc, not 4 (refused)"
grep -q '/etc/containers/systemd/hand/web.container' "$out/collision.out" || no "the refusal does not name the file"
[ -e /run/windlass/current ] && no "the refused switch changed the running link"
at "collision refused"
windlassctl --json switch "$c" --deadline 12 --take-over > "$out/switch.json" 2> "$out/switch.err"
rc=$?
at "switch ended"
cat "$out/switch.json" "$out/switch.err"
[ "$rc" = 3 ] || no "switch exited $rc, not 3 (rolled back)"
grep -q '"result":"rolled-back"' "$out/switch.json" || no "the switch did not end rolled-back"
grep -q 'no windlass generation runs now' "$out/switch.json" || no "the outcome does not say that no generation runs"
op=$(sed -n 's#.*"operation":"/io/windlass/Agent1/operation/\([^"]*\)".*#\1#p' "$out/switch.json")
tr -d ' \n' < "/var/lib/windlass/operations/$op.json" \
  | grep -q "\"taken_over\":\[{\"unit\":\"web.service\",\"path\":\"$hand\"" \
  || no "the record does not list the take-over: $(cat "/var/lib/windlass/operations/$op.json")"
grep -q 'Image=localhost/windlass-test/busybox:1.0' "$hand" || no "the hand-written $hand was not put back"
src=$(systemctl show -p SourcePath,ActiveState web.service | tr '\n' ' ')
echo "web.service: $src"
case "$src" in
  *SourcePath=$hand*ActiveState=inactive*|*ActiveState=inactive*SourcePath=$hand*) ;;
  *) no "web.service is not the hand-written one again, inactive as before: $src" ;;
esac
for u in db.service web-stamp.timer web-stamp.service vmnet-network.service vmdata-volume.service; do
  st=$(systemctl show -p LoadState,ActiveState "$u" | tr '\n' ' ')
  echo "$u: $st"
  case "$st" in
    *LoadState=not-found*ActiveState=inactive*|*ActiveState=inactive*LoadState=not-found*) ;;
    *) no "$u is still there: $st" ;;
  esac
done
loaded=$(systemctl list-units --all --no-legend --plain 'db.*' 'web-*' 'vmnet*' 'vmdata*' 'windlass-revert*')
[ -z "$loaded" ] || no "units still loaded: $loaded"
[ ! -e /run/windlass/current ] && [ ! -L /run/windlass/current ] || no "/run/windlass/current is still there"
[ ! -e /var/lib/windlass/profiles/system ] || no "a generation was selected"
windlassctl --json status > "$out/status.json"
cat "$out/status.json"
grep -q '"running":"1"' "$out/status.json" && no "status says generation 1 runs"
running=$(podman ps -q --filter name='^(db|web)$')
[ -z "$running" ] || no "containers still running: $running"
podman network exists vmnet && no "the generation's network vmnet was not removed: $(journalctl -o cat -u windlassd.service | grep -i network | tail -3)"
podman volume exists vmdata || no "the volume vmdata (data is kept) is gone"
if windlassctl rollback > "$out/rollback.out" 2>&1; then
  no "a rollback with nothing to roll back to was accepted"
fi
cat "$out/rollback.out"
grep -q 'nothing to roll back to' "$out/rollback.out" || no "the rollback refusal does not say why"
at "checked"
# A host that never ran windlass again, for the scenarios after this one.
rm -rf /etc/containers/systemd/hand
systemctl stop windlassd.service
rm -rf /var/lib/windlass /run/windlass
podman volume rm -f vmdata >/dev/null 2>&1
systemctl daemon-reload
systemctl start windlassd.service
at "state reset"
exit $fail
