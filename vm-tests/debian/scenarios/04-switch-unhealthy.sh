# Scenario 4, switch, unhealthy → automatic rollback: generation C makes
# web's health check fail; the switch is rolled back within the deadline,
# generation B runs again, windlassctl exits with the rolled-back code,
# the journal holds the operation's story under WINDLASS_OPERATION, and
# its diagnostics bundle holds web's journal, health log and timeline.
set -u
out=$1
c=$(windlassctl stage /host/data/gen-c)
echo "$c" > "$out/generation"
start=$(date +%s)
windlassctl --json switch "$c" > "$out/switch-c.json" 2> "$out/switch-c.err"
echo $? > "$out/switch-c.rc"
echo $(( $(date +%s) - start )) > "$out/elapsed"
sleep 5
for u in db web; do systemctl show -p MainPID,ActiveState "$u.service" > "$out/$u.show"; done
podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' web > "$out/web-env"
op=$(sed -n 's#.*"operation":"/io/windlass/Agent1/operation/\([^"]*\)".*#\1#p' "$out/switch-c.json")
echo "$op" > "$out/op"
cp "/var/lib/windlass/operations/$op.json" "$out/op.json"
journalctl --no-pager -o cat "WINDLASS_OPERATION=$op" > "$out/journal-op"
# The diagnostics bundle of the rolled-back switch: as written on the
# host, and as `windlassctl bundle` hands it over.
cp -r "/var/lib/windlass/operations/$op.d" "$out/bundle" 2> "$out/bundle-cp.err"
windlassctl bundle "$op" -o "$out/bundle.tar.zst" 2> "$out/bundle.err"
echo $? > "$out/bundle.rc"
windlassctl --json status > "$out/status.json"
journalctl --no-pager -o short-monotonic -u windlassd.service > "$out/windlassd.journal"
systemctl list-units --all --no-pager --plain 'windlass-revert*' > "$out/revert-units"
true
