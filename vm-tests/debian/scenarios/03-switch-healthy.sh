# Scenario 3, switch, healthy: windlassd (installed like a package: the
# unit, the D-Bus policy, the systemd generator) stages generation A (the
# basic fleet) and B (web changed), switches to A then B; only web is
# restarted by the second switch (db keeps its PID).
set -u
out=$1
sh /host/install-agent.sh
systemctl show -p ActiveState windlassd.service > "$out/windlassd.show"
a=$(windlassctl stage /host/data/gen-a)
b=$(windlassctl stage /host/data/gen-b)
echo "$a $b" > "$out/generations"
windlassctl switch "$a" > "$out/switch-a.out" 2> "$out/switch-a.err"
echo $? > "$out/switch-a.rc"
for u in db web; do systemctl show -p MainPID,ActiveState "$u.service" > "$out/$u-a.show"; done
windlassctl switch "$b" > "$out/switch-b.out" 2> "$out/switch-b.err"
echo $? > "$out/switch-b.rc"
for u in db web; do systemctl show -p MainPID,ActiveState "$u.service" > "$out/$u-b.show"; done
podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' web > "$out/web-env-b"
windlassctl --json status > "$out/status.json"
true
