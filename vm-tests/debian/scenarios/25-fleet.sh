# Scenario 25, a fleet rollout (issue 19) carried out by the real
# windlassd: nats-server (the trixie build the fleet tests use) with
# JetStream on loopback, windlass-fleetd from its shipped unit (user
# windlass-fleet from its sysusers.d file, in group `windlass`, calling
# windlassd over the system bus as that group), windlass-coordinator from
# its shipped unit, and
# `windlass-fleet rollout start` of a one-host canary wave to generation B.
# The order's switch runs with manual confirm; the coordinator confirms
# only once fleetd's heartbeat shows B running. Afterwards B is selected
# and running, web runs B's container (MARK=b), the host's operation
# carries the order's id as its request, and the rollout is completed
# with the host committed. Checks its own facts; prints the times.
set -u
out=$1
fail=0
no() { echo "FAIL: $*"; fail=1; }
t0=$(date +%s)
at() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
sh /host/install-agent.sh
install -m 755 /host/bin/nats-server /host/bin/windlass-fleetd /host/bin/windlass-coordinator \
  /host/bin/windlass-fleet /usr/local/bin/
export WINDLASS_NATS_URL=nats://127.0.0.1:4222
systemd-run -q --unit=windlass-test-nats --property=StateDirectory=windlass-test-nats \
  /usr/local/bin/nats-server -js -a 127.0.0.1 -p 4222 --store_dir /var/lib/windlass-test-nats \
  || no "nats-server did not start"
i=0
until windlass-fleet init > "$out/init.out" 2>&1; do
  i=$((i+1)); [ $i -gt 100 ] && { no "windlass-fleet init: $(cat "$out/init.out")"; break; }
  sleep 0.3
done
at "nats-server up, buckets made"

# fleetd and the coordinator as shipped, with the binaries' path of this
# guest and a short heartbeat (the default is 30 s).
mkdir -p /etc/windlass
printf 'WINDLASS_NATS_URL=%s\nWINDLASS_FLEET_HOST=vm-01\n' "$WINDLASS_NATS_URL" > /etc/windlass/fleetd.env
printf 'WINDLASS_NATS_URL=%s\n' "$WINDLASS_NATS_URL" > /etc/windlass/coordinator.env
install -D -m 644 /host/fleet/windlass-fleet.sysusers /usr/lib/sysusers.d/windlass-fleet.conf
systemd-sysusers /usr/lib/sysusers.d/windlass-fleet.conf || no "systemd-sysusers failed"
for u in windlass-fleetd windlass-coordinator; do
  sed "s#/usr/bin/$u#/usr/local/bin/$u#" "/host/fleet/$u.service" > "/etc/systemd/system/$u.service"
done
mkdir -p /etc/systemd/system/windlass-fleetd.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/windlass-fleetd --bus system --state /var/lib/windlass-fleet --heartbeat-interval 2 --label site=vm\n' \
  > /etc/systemd/system/windlass-fleetd.service.d/interval.conf
systemctl daemon-reload
systemctl start windlass-fleetd.service windlass-coordinator.service || no "the fleet units did not start"
i=0
until windlass-fleet hosts --heartbeat-interval 2 > "$out/hosts.out" 2>&1 && grep -q '^vm-01 .* idle' "$out/hosts.out"; do
  i=$((i+1)); [ $i -gt 100 ] && { no "no idle heartbeat of vm-01: $(cat "$out/hosts.out")"; break; }
  sleep 0.3
done
cat "$out/hosts.out"
at "fleetd's heartbeat seen"

# B is staged on the host (orders do not carry trees yet); the rollout
# names it by its digest, the same on every host.
b=$(windlassctl stage /host/data/gen-b)
digest=sha256:$(sha256sum /host/data/gen-b/windlass-generation.json | cut -d' ' -f1)
hex=$(printf '%064d' 0)
cat > /tmp/vm-rollout.toml <<EOF
id = "vm-b"

[target.generation]
native = { digest = "$digest", artifact = "sha256-$hex", artifact_sha256 = "$hex", size = 1 }

[[wave]]
name = "canary"
hosts = ["vm-01"]

[policy]
soak = "2s"
heartbeat_interval = "2s"
health_deadline = "3m"
wave_deadline = "6m"
EOF
windlass-fleet rollout start /tmp/vm-rollout.toml > "$out/rollout.out" 2>&1
rc=$?
cat "$out/rollout.out"
at "rollout ended ($rc)"
[ "$rc" = 0 ] || no "windlass-fleet rollout start exited $rc, not 0 (completed)"

windlassctl --json status > "$out/status.json"
grep -q "\"id\":\"$b\",\"running\":true,\"selected\":true" "$out/status.json" \
  || no "B ($b) is not selected and running: $(cat "$out/status.json")"
# The switch windlassd ran last is the order's: its request is the order
# id (`<rollout>/<seq>`), and it committed.
tr -d '\n' < "$out/status.json" | grep -o '"last_operation":{[^}]*}' > "$out/last-operation"
grep -q '"request":"vm-b/' "$out/last-operation" || no "the last operation is not the order's: $(cat "$out/last-operation")"
grep -q '"result":"committed"' "$out/last-operation" || no "the order's switch did not commit: $(cat "$out/last-operation")"
podman exec web env > "$out/web.env" 2>&1 || podman exec systemd-web env > "$out/web.env" 2>&1
grep -qx MARK=b "$out/web.env" || no "web does not run B's container: $(cat "$out/web.env")"
windlass-fleet --json rollout show vm-b > "$out/show.json" 2>&1 || no "rollout show failed: $(cat "$out/show.json")"
grep -q '"completed"' "$out/show.json" || no "the rollout is not completed: $(cat "$out/show.json")"
grep -q '"committed"' "$out/show.json" || no "vm-01 is not committed: $(cat "$out/show.json")"
journalctl --no-pager -o short-monotonic -u windlassd.service -u windlass-fleetd.service \
  -u windlass-coordinator.service > "$out/journal"
# fleetd runs as its own user, not root.
user=$(stat -c %U "/proc/$(systemctl show -p MainPID --value windlass-fleetd.service)")
[ "$user" = windlass-fleet ] || no "windlass-fleetd runs as $user, not windlass-fleet"

# Gone again, as a package removal would leave it (99-uninstall checks
# that nothing of windlass is left): the agent stays, on B.
systemctl stop windlass-fleetd.service windlass-coordinator.service windlass-test-nats.service
rm -rf /etc/systemd/system/windlass-fleetd.service /etc/systemd/system/windlass-fleetd.service.d \
  /etc/systemd/system/windlass-coordinator.service /usr/lib/sysusers.d/windlass-fleet.conf \
  /var/lib/windlass-fleet /var/lib/private/windlass-fleet /var/lib/windlass-test-nats \
  /etc/windlass/fleetd.env /etc/windlass/coordinator.env
for b in nats-server windlass-fleetd windlass-coordinator windlass-fleet; do rm -f "/usr/local/bin/$b"; done
userdel windlass-fleet 2>/dev/null; groupdel windlass-fleet 2>/dev/null
systemctl daemon-reload
systemctl reset-failed 'windlass-fleetd*' 'windlass-coordinator*' 'windlass-test-nats*' 2>/dev/null
left=$(systemctl list-units --all --no-legend --plain | grep -E 'windlass-(fleetd|coordinator|test-nats)')
[ -z "$left" ] || no "fleet units still loaded: $left"
at "done"
exit $fail
