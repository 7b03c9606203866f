# Scenario 3, switch, healthy: windlassd (installed like a package: the
# unit, the D-Bus policy, the systemd generator) stages generation A (the
# basic fleet) and B (web changed), switches to A then B; only web is
# restarted by the second switch (db keeps its PID).
set -u
out=$1
install -m 755 /host/bin/windlassd /host/bin/windlassctl /usr/local/bin/
install -D -m 755 /host/agent/windlass-generator /usr/lib/systemd/system-generators/windlass-generator
install -D -m 644 /host/agent/io.windlass.Agent1.conf /usr/share/dbus-1/system.d/io.windlass.Agent1.conf
sed 's#/usr/bin/windlassd#/usr/local/bin/windlassd#' /host/agent/windlassd.service > /etc/systemd/system/windlassd.service
groupadd -r windlass 2>/dev/null || true
systemctl reload dbus
systemctl daemon-reload
systemctl start windlassd.service
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
