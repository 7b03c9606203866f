# Scenario 2, argv round-trip: the torture fleet's units run through the
# real quadlet and systemd with a stand-in `podman` that records the argv
# of `podman run` (NUL-separated, one file per unit) and a stand-in `echo`
# for the job; the host compares them with the manifests byte for byte.
set -u
out=$1
data=/host/data/torture
mkdir -p "$out/argv" /etc/containers/systemd
cat > /usr/local/sbin/windlass-recorder <<'REC'
#!/bin/sh
# Records its argv for the VM harness. As `podman run` it then tells
# systemd it is ready and idles, so units that require it can start too.
name=${PODMAN_SYSTEMD_UNIT:-$(basename "$0")}
case "$(basename "$0")" in
  podman*) [ "${1:-}" = run ] || exit 0 ;;
esac
for a in "$@"; do printf '%s\000' "$a"; done > "/host/results/02-argv-roundtrip/argv/$name"
case "$(basename "$0")" in
  podman*) systemd-notify --ready; exec sleep infinity ;;
esac
exit 0
REC
chmod 755 /usr/local/sbin/windlass-recorder
mount --bind /usr/local/sbin/windlass-recorder /usr/bin/podman
mount --bind /usr/local/sbin/windlass-recorder /usr/bin/echo
cp "$data"/quadlet/* /etc/containers/systemd/
cp "$data"/systemd/* /etc/systemd/system/
systemctl daemon-reload
for f in "$data"/quadlet/*.container; do
  u=$(basename "$f" .container).service
  systemctl start "$u" >/dev/null 2>&1
done
for f in "$data"/systemd/*.service; do
  systemctl start "$(basename "$f")" >/dev/null 2>&1
done
ls "$out/argv" > "$out/recorded"
for f in "$data"/quadlet/*.container; do
  systemctl stop "$(basename "$f" .container).service" >/dev/null 2>&1
done
umount /usr/bin/podman /usr/bin/echo
for f in "$data"/quadlet/*; do rm -f "/etc/containers/systemd/$(basename "$f")"; done
for f in "$data"/systemd/*; do rm -f "/etc/systemd/system/$(basename "$f")"; done
systemctl daemon-reload
systemctl reset-failed
true
