# Cutover of a small service (issue 6): `hello` (a link run by
# hello.service, healthy once it answers on 127.0.0.1:9100) goes to a good
# version (committed), to one whose self-test fails (refused, nothing
# changes), and to one that starts but never gets healthy (reverted).
# The good version's self-test also probes the sandbox the agent runs it
# in (no writes outside its own /tmp, no host /tmp, no block devices, no
# new privileges, no network): a hole fails the good cutover, naming it.
# Versions are served by busybox httpd on loopback over plain http with
# allow_http = true: the guest has no TLS server; HTTPS is proven on the
# build host (agent/tests/cutover.rs, nginx with a test CA).
set -u
out=$1
sh /host/install-agent.sh
sha() { sha256sum "/srv/versions/$1" | cut -d' ' -f1; }
mk() { # name, what --self-test does, what a start does
  printf '#!/bin/sh\ncase "$1" in --self-test) %s;; esac\n%s\n' "$2" "$3" > "/srv/versions/$1"
  chmod 755 "/srv/versions/$1"
}
mkdir -p /srv/versions
serving='mkdir -p /run/hello && echo %s > /run/hello/healthz && exec busybox httpd -f -p 127.0.0.1:9100 -h /run/hello'
cat > /srv/sandbox-probe <<'PROBE'
fail() { echo "self-test sandbox: $*" >&2; exit 1; }
for d in /etc /usr/local/bin /var/lib/windlass /root /home; do
  touch "$d/windlass-probe" 2>/dev/null && fail "$d is writable"
done
[ -e /tmp/windlass-host-marker ] && fail "the host's /tmp is visible"
[ -n "$(find /dev -type b 2>/dev/null | head -n 1)" ] && fail "block devices are visible"
grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status || fail "new privileges are allowed"
busybox wget -q -T 3 -O /dev/null http://127.0.0.1:8088/hello-1 2>/dev/null && fail "the host's network is reachable"
touch /tmp/windlass-probe || fail "its own /tmp is not writable"
exit 0
PROBE
touch /tmp/windlass-host-marker
mk hello-1 'exit 0' "$(printf "$serving" 1)"
mk hello-2 'exec sh /srv/sandbox-probe' "$(printf "$serving" 2)"
mk hello-bad 'echo self-test: broken >&2; exit 1' 'exec sleep 100000'
mk hello-sick 'exit 0' 'exec sleep 100000'
pgrep -f 'httpd -p 127.0.0.1:8088' >/dev/null || busybox httpd -p 127.0.0.1:8088 -h /srv/versions
install -m 755 /srv/versions/hello-1 /usr/local/bin/hello
printf '[Unit]\nDescription=cutover test service\n[Service]\nExecStart=/usr/local/bin/hello\n' > /etc/systemd/system/hello.service
systemctl daemon-reload
systemctl start hello.service
mkdir -p /etc/windlass/targets
cat > /etc/windlass/targets/hello.toml <<'TOML'
link = "/usr/local/bin/hello"
unit = "hello.service"
health_http = "http://127.0.0.1:9100/healthz"
deadline = 30
keep = 2
self_test_timeout = 30
allow_http = true
TOML
facts() { # prefix
  readlink /usr/local/bin/hello > "$out/$1.link" || echo "plain file" > "$out/$1.link"
  systemctl show -p MainPID,ActiveState hello.service > "$out/$1.show"
  busybox wget -q -O - http://127.0.0.1:9100/healthz > "$out/$1.health" 2>/dev/null
  (cd /var/lib/windlass && find artifacts -exec ls -ld {} + 2>/dev/null | awk '{print $1, $NF}' | sort) > "$out/$1.artifacts"
}
u=http://127.0.0.1:8088
sleep 2
facts start
windlassctl cutover hello 2 "$u/hello-2" "$(sha hello-2)" > "$out/good.out" 2> "$out/good.err"
echo $? > "$out/good.rc"
facts good
windlassctl cutover hello bad "$u/hello-bad" "$(sha hello-bad)" > "$out/bad.out" 2> "$out/bad.err"
echo $? > "$out/bad.rc"
facts bad
start=$(date +%s)
windlassctl cutover hello sick "$u/hello-sick" "$(sha hello-sick)" --deadline 15 > "$out/sick.out" 2> "$out/sick.err"
echo $? > "$out/sick.rc"
echo $(( $(date +%s) - start )) > "$out/sick.elapsed"
sleep 2
facts sick
systemctl list-units --all --no-pager --plain 'windlass-*' > "$out/windlass-units"
true
