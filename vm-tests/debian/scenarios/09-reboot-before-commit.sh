# Scenario 9 of issue 5, reboot before commit, native platform: a switch
# to B waits for a manual confirm, so B runs (/run/windlass/current) while
# the profile still selects A; the guest reboots at once (no service is
# stopped, as in a crash). It boots A, the selected generation (windlass's
# systemd generator reads the profile when /run/windlass/current is gone),
# and windlassd, started at boot, resolves the interrupted switch as
# rolled back.
set -u
out=$1
ops=/var/lib/windlass/operations
field() { sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$ops/$1.json" 2>/dev/null; }
facts() {
  cat /proc/sys/kernel/random/boot_id > "$out/boot-id-$1"
  readlink /run/windlass/current > "$out/current-$1" || echo none > "$out/current-$1"
  readlink /var/lib/windlass/profiles/system > "$out/selected-$1"
  systemctl show -p ActiveState web.service > "$out/web-$1.show"
  podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' web > "$out/web-env-$1"
}
if [ "${2:-}" != after-reboot ]; then
  # windlassd starts at boot, as a package's preset would have it.
  systemctl enable windlassd.service
  windlassctl switch 1 > /dev/null 2>&1
  op=$(windlassctl switch 2 --confirm manual --deadline 600 --no-wait)
  id=${op##*/}
  echo "$id" > "$out/op"
  i=0
  while [ $i -lt 300 ] && [ "$(field "$id" phase)" != waiting-confirm ]; do
    sleep 1
    i=$((i + 1))
  done
  field "$id" phase > "$out/phase-before"
  facts before
  echo 09-reboot-before-commit > /var/lib/windlass-vmtest/resume
  sync
  systemctl reboot --force --force
  sleep 600
  exit 1
fi
id=$(cat "$out/op")
i=0
while [ $i -lt 300 ]; do
  r=$(field "$id" result)
  [ -n "$r" ] && [ "$r" != null ] && break
  sleep 1
  i=$((i + 1))
done
cp "$ops/$id.json" "$out/op.json"
facts after
systemctl show -p ActiveState windlassd.service > "$out/windlassd.show"
windlassctl --json status > "$out/status.json"
# What happened to the agent in this boot (its starts, exits, restarts).
journalctl -b --no-pager -o short-monotonic -u windlassd.service -u dbus.service \
  > "$out/windlassd.journal" 2>&1
true
