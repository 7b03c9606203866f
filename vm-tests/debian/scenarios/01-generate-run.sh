# Scenario 1, generate → run: the generated Quadlet units and job units of
# the basic fleet, installed as an operator would, start through Podman's
# generator; `web` requires `db`, both become healthy (Notify=healthy);
# the job's timer is listed and, triggered, runs its command. Facts are
# collected into $1 for the host to judge.
set -u
out=$1
data=/host/data/basic
mkdir -p /etc/containers/systemd
cp "$data"/quadlet/* /etc/containers/systemd/
cp "$data"/systemd/* /etc/systemd/system/
systemctl daemon-reload
ls /run/systemd/generator/ > "$out/generated-units"
systemctl enable --now web-stamp.timer
# Starting web pulls in db (Requires=) and returns once web is healthy.
systemctl start web.service
echo $? > "$out/start-rc"
for u in db.service web.service vmnet-network.service vmdata-volume.service; do
  systemctl show -p ActiveState,SubState,Result,ActiveEnterTimestampMonotonic,InactiveExitTimestampMonotonic "$u" > "$out/$u.show"
done
podman inspect --format '{{.Name}} {{.State.Health.Status}}' db web > "$out/health"
busybox wget -q -O - http://127.0.0.1:8080/ > "$out/http" 2>&1
systemctl list-timers --all --no-pager > "$out/timers"
systemctl start web-stamp.service
cat /run/windlass-vmtest-job > "$out/job" 2>&1
journalctl -b --no-pager -u db.service -u web.service -u web-stamp.service > "$out/journal"
# Leave nothing behind for later scenarios (windlassd's own generations
# must not meet units of the same name from /etc).
systemctl disable --now web-stamp.timer
systemctl stop web.service db.service
for f in "$data"/quadlet/*; do rm -f "/etc/containers/systemd/$(basename "$f")"; done
for f in "$data"/systemd/*; do rm -f "/etc/systemd/system/$(basename "$f")"; done
systemctl daemon-reload
podman rm -af >/dev/null 2>&1
true
