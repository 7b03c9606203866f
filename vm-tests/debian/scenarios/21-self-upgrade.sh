# Agent self-upgrade (issue 6), last because it replaces the agent:
# windlassd cuts over to a build stamped with another version (commits;
# Version on the bus shows it), then to a build that passes its self-test
# but dies at every start (the external revert timer puts the link back
# and restarts the previous agent, which answers again).
set -u
out=$1
sh /host/install-agent.sh
sha() { sha256sum "/srv/versions/$1" | cut -d' ' -f1; }
mkdir -p /srv/versions /etc/windlass/targets
install -m 755 /host/www/windlassd-2 /srv/versions/windlassd-2
printf '#!/bin/sh\ncase "$1" in --self-test) exit 0;; esac\necho "crashing at start" >&2\nexit 1\n' > /srv/versions/windlassd-crash
chmod 755 /srv/versions/windlassd-crash
pgrep -f 'httpd -p 127.0.0.1:8088' >/dev/null || busybox httpd -p 127.0.0.1:8088 -h /srv/versions
cat > /etc/windlass/targets/windlassd.toml <<'TOML'
link = "/usr/local/bin/windlassd"
unit = "windlassd.service"
agent = true
deadline = 20
keep = 3
self_test_timeout = 60
allow_http = true
TOML
version() { busctl get-property io.windlass.Agent1 /io/windlass/Agent1 io.windlass.Agent1 Version 2>/dev/null; }
result() { # operation path, seconds: waits until it has a result (the agent may be away)
  i=0
  while [ "$i" -lt "$2" ]; do
    r=$(busctl get-property io.windlass.Agent1 "$1" io.windlass.Operation1 Result 2>/dev/null)
    case "$r" in 's "'?*'"') echo "$r"; return;; esac
    sleep 1; i=$((i + 1))
  done
  echo timeout
}
exe() { readlink "/proc/$(systemctl show -p MainPID --value windlassd.service)/exe"; }
u=http://127.0.0.1:8088
version > "$out/version-before"
exe > "$out/exe-before"
op=$(windlassctl cutover windlassd 2 "$u/windlassd-2" "$(sha windlassd-2)" --no-wait 2> "$out/up.err")
echo $? > "$out/up.rc"
echo "$op" > "$out/up.op"
result "$op" 300 > "$out/up.result"
busctl get-property io.windlass.Agent1 "$op" io.windlass.Operation1 Error > "$out/up.error" 2>&1
journalctl --no-pager -o short-monotonic -u windlassd.service -u 'windlass-*' > "$out/up.journal"
version > "$out/version-after"
exe > "$out/exe-after"
readlink /usr/local/bin/windlassd > "$out/up.link"
systemctl list-units --all --no-pager --plain 'windlass-revert*' > "$out/up.revert-units"
start=$(date +%s)
op=$(windlassctl cutover windlassd crash "$u/windlassd-crash" "$(sha windlassd-crash)" --no-wait 2> "$out/crash.err")
echo $? > "$out/crash.rc"
echo "$op" > "$out/crash.op"
sleep 10
readlink /usr/local/bin/windlassd > "$out/crash.during-link"
systemctl show -p ActiveState,NRestarts windlassd.service > "$out/crash.during-show"
result "$op" 400 > "$out/crash.result"
echo $(( $(date +%s) - start )) > "$out/crash.elapsed"
sleep 2
version > "$out/version-final"
exe > "$out/exe-final"
readlink /usr/local/bin/windlassd > "$out/crash.link"
busctl get-property io.windlass.Agent1 "$op" io.windlass.Operation1 Error > "$out/crash.error" 2>&1
journalctl --no-pager -o short-monotonic -u windlassd.service > "$out/windlassd.journal"
journalctl --no-pager -o short-monotonic -u 'windlass-revert-*' > "$out/revert.journal"
true
