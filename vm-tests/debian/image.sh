#!/usr/bin/env bash
# Builds (once) and prints the directory of the Debian trixie guest image for
# the VM harness: vmlinuz, initrd.img and rootfs.ext4 (raw). Cached under
# $WINDLASS_CACHE (default /var/cache/windlass), keyed by the package list
# and this script's setup, so later runs reuse it. Each run boots a
# copy-on-write overlay, so the cached image is never modified.
set -euo pipefail
PKGS="systemd,systemd-sysv,dbus,podman,crun,conmon,netavark,aardvark-dns,nftables,iptables,catatonit,busybox-static,linux-image-amd64,initramfs-tools,iproute2,procps,ca-certificates,kmod,docker-registry"
SETUP_VERSION=1
cache="${WINDLASS_CACHE:-/var/cache/windlass}"
key=$(printf '%s\n' "$PKGS" "$SETUP_VERSION" "$(sed -n '/^# guest-setup-begin/,/^# guest-setup-end/p' "$0")" | sha256sum | cut -c1-12)
dir="$cache/vm-image-$key"
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
# --check: say whether it is built, build nothing.
if [ "${1:-}" = "--check" ]; then exit 1; fi
for tool in mmdebstrap mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool missing" >&2; exit 1; }
done
mkdir -p "$cache"
exec 9>"$cache/.vm-image.lock"
flock 9
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
root="$tmp/root"
# guest-setup-begin
mmdebstrap --variant=minbase --include="$PKGS" \
  --customize-hook='echo windlass-vm > "$1/etc/hostname"' \
  --customize-hook='printf "host /host 9p trans=virtio,version=9p2000.L,msize=1048576,nofail 0 0\n" >> "$1/etc/fstab"' \
  --customize-hook='mkdir -p "$1/host"' \
  --customize-hook='chroot "$1" systemctl mask getty@tty1.service serial-getty@ttyS0.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true' \
  --customize-hook='printf "[Unit]\nDescription=windlass VM test runner\nAfter=multi-user.target host.mount\nRequires=host.mount\n[Service]\nType=oneshot\nStandardOutput=tty\nStandardError=tty\nTTYPath=/dev/ttyS1\nExecStart=/bin/sh /host/guest-run.sh\nExecStopPost=/bin/systemctl poweroff --no-block\n[Install]\nWantedBy=multi-user.target\n" > "$1/etc/systemd/system/windlass-vmtest.service"' \
  --customize-hook='chroot "$1" systemctl enable windlass-vmtest.service' \
  trixie "$root" http://deb.debian.org/debian >&2
# guest-setup-end
cp -L "$root"/boot/vmlinuz-* "$tmp/vmlinuz"
cp -L "$root"/boot/initrd.img-* "$tmp/initrd.img"
chmod 644 "$tmp/vmlinuz" "$tmp/initrd.img"
mkfs.ext4 -q -L windlass-root -d "$root" "$tmp/rootfs.ext4" 4G >&2
rm -rf "$root"
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$dir"
