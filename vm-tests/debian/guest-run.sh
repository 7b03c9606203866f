#!/bin/sh
# Runs inside the Debian VM as a oneshot service at boot (see image.sh):
# builds the test image from busybox-static, then runs its scenarios
# (see below) in name order, each with its own result directory
# /host/results/<name>/ holding `log`, `rc` and `seconds` (its wall
# time). Live output goes to ttyS1.
#
# A scenario may reboot the guest: it writes its name to $state/resume,
# syncs and reboots (`systemctl reboot --force --force`, as a crash would,
# or a plain `systemctl reboot`); at the next boot this script skips the
# scenarios that finished and runs that one again with `after-reboot` as
# its second argument. A scenario cut short by any other reboot (a
# guest kernel crash: panic=-1 reboots at once) fails, and the guest
# stops there: it writes the scenario's name to /host/crashed-<n> and
# powers off, for the host to run this guest's scenarios once more from
# a clean disk (the rest would run on whatever the crash left).
set -u
export PATH=/host/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
state=/var/lib/windlass-vmtest
mkdir -p /host/results "$state"
boot=$(( $(cat "$state/boots" 2>/dev/null || echo 0) + 1 ))
echo "$boot" > "$state/boots"
resume=$(cat "$state/resume" 2>/dev/null)
rm -f "$state/resume"
sync
echo "guest: up (boot $boot), kernel $(uname -r), systemd $(systemctl --version | head -1 | cut -d' ' -f2)"
if [ "$boot" -gt 4 ]; then
  echo "guest: too many reboots, giving up"
  exit 1
fi
# The test image: busybox-static imported as an OCI image, no registry needed.
if ! podman image exists localhost/windlass-test/busybox:1.0; then
  img=/tmp/windlass-test-image
  mkdir -p "$img/bin" "$img/tmp" "$img/www"
  cp /usr/bin/busybox "$img/bin/busybox"
  for a in $(/usr/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$img/bin/$a"
  done
  echo "windlass test page" > "$img/www/index.html"
  tar -C "$img" -c . | podman import --change 'CMD ["/bin/sh"]' - localhost/windlass-test/busybox:1.0 >/dev/null \
    || echo "guest: podman import failed"
fi
# This guest's scenarios: those /host/guests/<n> names, where n is the
# kernel's windlass.guest=<n> (the host boots two guests side by side);
# every scenario when the kernel names no guest.
guest=$(sed -n 's/.*windlass\.guest=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$guest" ]; then
  scenarios=$(sed 's#^#/host/scenarios/#' "/host/guests/$guest")
else
  scenarios=$(ls /host/scenarios/*.sh)
fi
echo "guest: guest ${guest:-(all)} runs $(echo $scenarios | wc -w) scenarios"
for s in $scenarios; do
  name=$(basename "$s" .sh)
  out=/host/results/$name
  [ -f "$out/rc" ] && continue
  if [ "$name" = "$resume" ]; then
    echo "guest: scenario $name: resumed after the reboot"
    echo "--- after the reboot ---" >>"$out/log"
    timeout 900 sh "$s" "$out" after-reboot >>"$out/log" 2>&1
    rc=$?
  elif [ -f "$out/t0" ]; then
    echo "guest: scenario $name: cut short by a reboot it did not ask for" | tee -a "$out/log"
    echo 99 >"$out/rc"
    echo "$name" >"/host/crashed-${guest:-all}"
    sync
    echo "guest: stopping here: the host starts this guest again from a clean disk"
    exit 1
  else
    mkdir -p "$out"
    echo "guest: scenario $name: start"
    date +%s%N >"$out/t0"
    timeout 900 sh "$s" "$out" >"$out/log" 2>&1
    rc=$?
  fi
  ds=$(( ($(date +%s%N) - $(cat "$out/t0")) / 100000000 ))
  secs=$((ds / 10)).$((ds % 10))
  echo "$secs" >"$out/seconds"
  echo "$rc" >"$out/rc"
  echo "guest: scenario $name: rc=$rc in $secs s"
  sed 's/^/  | /' "$out/log" | tail -n 40
done
sync
echo "guest: done"
