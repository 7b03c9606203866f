# Scenario 99, leaving windlass (issue 22): on the host the scenarios
# before it leave behind (apps running, a sweep timer, cutover links, a
# self-upgraded agent), the uninstall steps of docs/agent.md are run as
# written, with this guest's install paths (binaries and units under
# /usr/local/bin and /etc/systemd/system, see install-agent.sh). Then
# nothing of windlass's is left: no unit, timer, generator output, link,
# policy file, state or group; the apps' volume data is kept. Checks its
# own facts.
set -u
out=$1
fail=0
no() { echo "FAIL: $*"; fail=1; }
sh /host/install-agent.sh
# The volume the agent scenarios' generations use: its data is kept.
vmdata=no
podman volume exists vmdata && vmdata=yes
# A cutover target installed by an earlier scenario (20): its link must
# end up a plain file.
hello=no
[ -e /etc/windlass/targets/hello.toml ] && hello=yes
# 1. Stop every app: switch to an empty generation.
e=$(windlassctl stage /host/data/gen-empty)
windlassctl switch "$e" > "$out/switch.out" 2>&1 || no "the switch to the empty generation failed: $(cat "$out/switch.out")"
if [ "$(systemctl list-units --all --no-legend --plain 'db.*' 'web.*' 'rel.*' | grep -c .)" != 0 ]; then
  echo "--- after the switch to the empty generation, still loaded:"
  systemctl list-units --all --no-legend --plain 'db.*' 'web*' 'rel.*'
  systemctl status --no-pager -n 15 db.service web.service 2>&1 | tail -40
  journalctl --no-pager -o short-monotonic -u windlassd.service | tail -30
fi
# 2. Cutover links point into the state directory: make each a copy.
for t in /etc/windlass/targets/*.toml; do
  [ -e "$t" ] || continue
  l=$(sed -n 's/^link *= *"\(.*\)"/\1/p' "$t")
  [ -L "$l" ] && cp --remove-destination "$(readlink -f "$l")" "$l"
done
# 3. The agent, its timer, unit, bus policy and generator.
systemctl disable --now windlass-sweep.timer        # if it was installed
systemctl disable --now windlass-drift-scan.timer   # if it was installed
systemctl disable --now windlassd.service
rm -f /usr/local/bin/windlassd /usr/local/bin/windlassctl \
  /etc/systemd/system/windlassd.service /etc/systemd/system/windlass-sweep.* \
  /etc/systemd/system/windlass-drift-scan.* \
  /usr/share/dbus-1/system.d/io.windlass.Agent1.conf \
  /usr/lib/systemd/system-generators/windlass-generator
rm -rf /etc/systemd/system/windlassd.service.d
systemctl daemon-reload && systemctl reload dbus
# 4. State, runtime directory, targets, group.
rm -rf /var/lib/windlass /run/windlass /etc/windlass
groupdel windlass

# What is left. (windlass-vmtest.service is this test's runner.)
units=$(systemctl list-units --all --no-legend --plain | grep -v -e windlass-vmtest -e 'windlass.x2droot' \
  | grep -E 'windlass|^(db|web|rel)[.-]|vmnet|vmdata')
[ -z "$units" ] || no "units still loaded: $units"
files=$(systemctl list-unit-files --no-legend | grep -v windlass-vmtest | grep windlass)
[ -z "$files" ] || no "unit files still installed: $files"
gen=$(find /run/systemd/generator /run/systemd/generator.late /run/systemd/generator.early \
  -name 'db*' -o -name 'web*' -o -name 'rel*' -o -name 'vmnet*' -o -name 'vmdata*' 2>/dev/null)
[ -z "$gen" ] || no "generator output left: $gen"
for f in /usr/local/bin/windlassd /usr/local/bin/windlassctl /var/lib/windlass /run/windlass \
  /etc/windlass /usr/share/dbus-1/system.d/io.windlass.Agent1.conf \
  /usr/lib/systemd/system-generators/windlass-generator; do
  [ -e "$f" ] || [ -L "$f" ] && no "$f is still there"
done
getent group windlass && no "the group windlass is still there"
busctl --system status io.windlass.Agent1 >/dev/null 2>&1 && no "io.windlass.Agent1 still answers"
running=$(podman ps --format '{{.Names}}')
[ -z "$running" ] || no "containers still running: $running"
podman network exists vmnet && no "the network vmnet is still there"
[ "$vmdata" = no ] || podman volume exists vmdata || no "the volume vmdata (data is kept) is gone"
if [ "$hello" = yes ]; then
  [ -f /usr/local/bin/hello ] && [ ! -L /usr/local/bin/hello ] \
    || no "the cutover target /usr/local/bin/hello is not a plain file"
fi
echo "left behind: $(podman volume ls -q | tr '\n' ' ')(volumes, kept by choice)"
exit $fail
