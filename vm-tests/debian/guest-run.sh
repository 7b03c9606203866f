#!/bin/sh
# Runs inside the Debian VM as a oneshot service at boot (see image.sh):
# builds the test image from busybox-static, then runs every scenario in
# /host/scenarios in name order, each with its own result directory
# /host/results/<name>/ holding `log` and `rc`. Live output goes to ttyS1.
set -u
export PATH=/host/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "guest: up, kernel $(uname -r), systemd $(systemctl --version | head -1 | cut -d' ' -f2)"
mkdir -p /host/results
# The test image: busybox-static imported as an OCI image, no registry needed.
img=/tmp/windlass-test-image
mkdir -p "$img/bin" "$img/tmp" "$img/www"
cp /usr/bin/busybox "$img/bin/busybox"
for a in $(/usr/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$img/bin/$a"
done
echo "windlass test page" > "$img/www/index.html"
tar -C "$img" -c . | podman import --change 'CMD ["/bin/sh"]' - localhost/windlass-test/busybox:1.0 >/dev/null \
  || echo "guest: podman import failed"
for s in /host/scenarios/*.sh; do
  name=$(basename "$s" .sh)
  out=/host/results/$name
  mkdir -p "$out"
  echo "guest: scenario $name: start"
  timeout 900 sh "$s" "$out" >"$out/log" 2>&1
  rc=$?
  echo "$rc" >"$out/rc"
  echo "guest: scenario $name: rc=$rc"
  sed 's/^/  | /' "$out/log" | tail -n 40
done
sync
echo "guest: done"
