# Scenario 22, adopting what already runs (issue 22): a container started
# by hand with `podman run` and an app run from a hand-written Quadlet
# file, each with data in a named volume, are imported (`windlass import
# podman`, `windlass import quadlet`), generated and switched to with
# --take-over. Both end up running under windlass (their units come from
# the windlass generation, the hand-written file is set aside) with the
# same data volumes. Checks its own facts.
set -u
out=$1
fail=0
no() { echo "FAIL: $*"; fail=1; }
t0=$(date +%s)
at() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
sh /host/install-agent.sh
img=localhost/windlass-test/busybox:1.0
# By hand: podman run, host network, data in the volume adoptdata.
podman run -d --name adopt-run --stop-timeout 2 --network host -v adoptdata:/data "$img" \
  httpd -f -p 8095 -h /www > /dev/null || no "podman run failed"
podman exec adopt-run sh -c 'echo run-data > /data/marker'
# By hand: a Quadlet file, data in the volume handdata.
mkdir -p /etc/containers/systemd
hand=/etc/containers/systemd/adopt-hand.container
cat > "$hand" <<EOF
[Unit]
Description=an app from a hand-written Quadlet file

[Container]
Image=$img
Exec=httpd -f -p 8096 -h /www
Network=host
Volume=handdata:/data
StopTimeout=2
EOF
systemctl daemon-reload
systemctl start adopt-hand.service || no "the hand-written unit did not start"
podman exec systemd-adopt-hand sh -c 'echo hand-data > /data/marker' \
  || no "could not write into the hand-written unit's container"
at "running by hand"

# Import both into one fleet; generate it here.
src=/tmp/adopt-src
rm -rf "$src" /tmp/adopt-out
mkdir -p /tmp/adopt-q
cp "$hand" /tmp/adopt-q/
windlass import quadlet /tmp/adopt-q -o "$src" > "$out/import-quadlet.out" 2>&1 \
  || no "import quadlet failed: $(cat "$out/import-quadlet.out")"
podman container inspect adopt-run > "$out/inspect.json"
windlass import podman "$out/inspect.json" -o "$src" > "$out/import-podman.out" 2>&1 \
  || no "import podman failed: $(cat "$out/import-podman.out")"
cat "$out/import-quadlet.out" "$out/import-podman.out"
windlass generate "$src" --output /tmp/adopt-out --target quadlet,systemd > "$out/generate.out" 2>&1 \
  || no "generate failed: $(cat "$out/generate.out")"
at "imported and generated"

# The container started by hand goes; windlass's takes its name.
podman rm -f adopt-run > /dev/null
g=$(windlassctl stage /tmp/adopt-out)
windlassctl switch "$g" --take-over > "$out/switch.out" 2>&1
rc=$?
cat "$out/switch.out"
if [ "$rc" != 0 ]; then
  no "the switch with --take-over exited $rc"
  journalctl --no-pager -o short-monotonic -u windlassd.service | tail -60
fi
at "switched"

for app in adopt-run adopt-hand; do
  st=$(systemctl show -p ActiveState,FragmentPath,SourcePath "$app.service" | tr '\n' ' ')
  echo "$app.service: $st"
  case "$st" in *ActiveState=active*) ;; *) no "$app.service is not active: $st" ;; esac
  case "$st" in *SourcePath=/etc/containers/systemd*) no "$app.service still comes from the hand-written file: $st" ;; esac
done
[ "$(podman exec adopt-run cat /data/marker)" = run-data ] || no "adopt-run does not see its data"
[ "$(podman exec adopt-hand cat /data/marker)" = hand-data ] || no "adopt-hand does not see its data"
[ -e "$hand" ] && no "the hand-written $hand was not set aside"
find /var/lib/windlass/taken-over -name adopt-hand.container | grep -q . \
  || no "the hand-written file is not kept under /var/lib/windlass/taken-over"
for p in 8095 8096; do
  podman exec adopt-run wget -q -O /dev/null "http://127.0.0.1:$p/" || no "nothing answers on port $p"
done
at "checked"
exit $fail
