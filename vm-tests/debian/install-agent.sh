#!/bin/sh
# Installs windlassd as a package would (binaries in /usr/local/bin, the
# unit, the D-Bus policy, the systemd generator, the `windlass` group) and
# starts it, unless it already runs. Scenarios that need the agent call
# `sh /host/install-agent.sh` first, so each can also run on its own.
set -u
systemctl is-active -q windlassd.service && exit 0
install -m 755 /host/bin/windlassd /host/bin/windlassctl /usr/local/bin/
install -D -m 755 /host/agent/windlass-generator /usr/lib/systemd/system-generators/windlass-generator
install -D -m 644 /host/agent/io.windlass.Agent1.conf /usr/share/dbus-1/system.d/io.windlass.Agent1.conf
sed 's#/usr/bin/windlassd#/usr/local/bin/windlassd#' /host/agent/windlassd.service > /etc/systemd/system/windlassd.service
groupadd -r windlass 2>/dev/null || true
systemctl reload dbus
systemctl daemon-reload
systemctl start windlassd.service
