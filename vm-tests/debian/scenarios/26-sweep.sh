# Sweep (issue 7): a registry in the guest (Debian's docker-registry on
# localhost:5000) holds release 1.0.0 of the test image; generation S
# (gen-a plus the app `rel` on that release, tracked by semver) runs.
# Then 1.1.0 is pushed (and removed locally, so it must come from the
# registry); the sweep timer's service fires it (systemctl start): rel is
# upgraded through the normal switch and promoted. A second fire is a
# no-op.
set -u
out=$1
sh /host/install-agent.sh
mkdir -p /etc/containers/registries.conf.d
printf '[[registry]]\nlocation = "localhost:5000"\ninsecure = true\n' \
  > /etc/containers/registries.conf.d/50-windlass-test.conf
# Debian's default registry config asks for htpasswd (Basic) auth, which
# sweeps do not speak (anonymous bearer tokens only): run it open, on
# loopback.
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\nhttp:\n  addr: 127.0.0.1:5000\n' \
  > /etc/docker/registry/config.yml
systemctl restart docker-registry.service
for i in $(seq 50); do
  wget -q -O /dev/null http://localhost:5000/v2/ 2>/dev/null && break
  busybox wget -q -O /dev/null http://localhost:5000/v2/ 2>/dev/null && break
  sleep 0.2
done
push() {
  podman tag localhost/windlass-test/busybox:1.0 "localhost:5000/windlass-test/rel:$1"
  podman push -q --tls-verify=false "localhost:5000/windlass-test/rel:$1" >> "$out/push.log" 2>&1
  echo "push $1 $?" >> "$out/push.rcs"
}
push 1.0.0
# The sweep's registry over plain HTTP, on loopback only.
mkdir -p /etc/systemd/system/windlassd.service.d
printf '[Service]\nEnvironment=WINDLASS_INSECURE_REGISTRY=localhost:5000\n' \
  > /etc/systemd/system/windlassd.service.d/50-test-registry.conf
for u in windlass-sweep.service windlass-sweep.timer; do
  sed 's#/usr/bin/windlassctl#/usr/local/bin/windlassctl#' "/host/agent/$u" > "/etc/systemd/system/$u"
done
systemctl daemon-reload
systemctl restart windlassd.service
systemctl enable --now windlass-sweep.timer 2> /dev/null
systemctl list-timers --all --no-pager > "$out/timers"
s=$(windlassctl stage /host/data/gen-s)
windlassctl switch "$s" > "$out/switch.out" 2>&1
echo $? > "$out/switch.rc"
podman container inspect --format '{{.ImageName}}' rel > "$out/image-before"
# A newer release, only in the registry; and a non-release tag.
push 1.1.0
podman tag localhost/windlass-test/busybox:1.0 localhost:5000/windlass-test/rel:latest
podman push -q --tls-verify=false localhost:5000/windlass-test/rel:latest >> "$out/push.log" 2>&1
podman rmi localhost:5000/windlass-test/rel:1.1.0 localhost:5000/windlass-test/rel:latest >> "$out/push.log" 2>&1
systemctl start windlass-sweep.service
systemctl show -p Result,ExecMainStatus windlass-sweep.service > "$out/sweep1.show"
podman container inspect --format '{{.ImageName}}' rel > "$out/image-after"
systemctl show -p MainPID rel.service > "$out/rel-1.show"
windlassctl --json status > "$out/status-1.json"
cp /var/lib/windlass/releases/rel.json "$out/canonical.json" 2>/dev/null
systemctl start windlass-sweep.service
systemctl show -p Result,ExecMainStatus windlass-sweep.service > "$out/sweep2.show"
systemctl show -p MainPID rel.service > "$out/rel-2.show"
windlassctl --json status > "$out/status-2.json"
cp /var/lib/windlass/sweeps.jsonl "$out/sweeps.jsonl"
journalctl -u windlass-sweep.service --no-pager > "$out/sweep.journal"
true
