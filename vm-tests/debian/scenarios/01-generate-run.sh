# Scenario 1, generate → run: the example fleet (examples/), generated on
# the host and installed as an operator would, starts through Podman's
# Quadlet generator. Its images cannot be pulled here, so each is stood in
# for by busybox-static imported under the image's own name, with small
# scripts in place of the apps' programs and health commands. Starting the
# apps nobody depends on pulls in the rest through Requires=/Wants=, in
# order, each active only once healthy (Notify=healthy); every job's timer
# is listed and, triggered, runs its command in its container. Facts are
# collected into $1 for the host to judge.
set -u
out=$1
data=/host/data/examples
q=$data/quadlet

# The stand-in image: one rootfs, imported once per app with the app's
# name and the ports it serves a page on.
img=/tmp/windlass-standin
rm -rf "$img"
mkdir -p "$img/bin" "$img/tmp" "$img/www/config" "$img/usr/local/bin" "$img/etc" "$img/standin"
chmod 1777 "$img/tmp"
cp /usr/bin/busybox "$img/bin/busybox"
for a in $(/usr/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$img/bin/$a"
done
for f in index.html config/index.html status.php; do
  echo "windlass stand-in" > "$img/www/$f"
done
printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n' > "$img/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\npostgres:x:999:\n' > "$img/etc/group"
cp /host/standin/run /host/standin/cli "$img/standin/"
# The programs the fleet's entrypoints, commands, health checks and jobs
# call; the health commands' are read from the generated units.
clis="caddy lnd bitcoin-cli lncli curl pg_isready redis-cli php pg_dump vacuumdb
  $(sed -n 's/^HealthCmd=\["\([^"]*\)".*/\1/p' "$q"/*.container)"
for c in $clis; do
  [ -e "$img/bin/$c" ] || [ -e "$img/usr/local/bin/$c" ] || ln -s /standin/cli "$img/usr/local/bin/$c"
done
ln -sf /standin/run "$img/usr/local/bin/caddy"
ln -sf /standin/run "$img/usr/local/bin/lnd"
# Named volumes take the mode of the image's directory: let every app's
# user (postgres runs as 999) write to its own.
for t in $(sed -n 's/^Volume=[^/][^:]*:\([^:]*\).*/\1/p' "$q"/*.container); do
  mkdir -p "$img$t" && chmod 1777 "$img$t"
done
tar -C "$img" -cf /tmp/windlass-standin.tar .
while read -r app image ports; do
  ports=$(echo "$ports" | tr ' ' ,)
  podman import -q --change 'ENTRYPOINT ["/standin/run"]' \
    --change "ENV PATH=/usr/local/bin:/bin" --change "ENV STANDIN_APP=$app" \
    --change "ENV STANDIN_PORTS=$ports" /tmp/windlass-standin.tar "$image" </dev/null >/dev/null \
    || echo "podman import $image failed"
done < "$data/standins"
rm -rf "$img" /tmp/windlass-standin.tar
podman images --format '{{.Repository}}:{{.Tag}}' > "$out/images"

# What the host must provide: podman secrets, bind-mount sources and
# environment files named by the units. `Secret=` and `EnvironmentFile=`
# are written as quoted words (Quadlet splits them); the example's names
# hold no escapes, so dropping the quotes gives the name.
for s in $(sed -n 's/^Secret="\{0,1\}\([^,"]*\).*/\1/p' "$q"/*.container | sort -u); do
  printf 'stand-in value of %s' "$s" | podman secret create "$s" - >/dev/null
done
for d in $(sed -n 's/^Volume=\(\/[^:]*\):.*/\1/p' "$q"/*.container); do
  mkdir -p "$d"
done
for f in $(sed -n 's/^EnvironmentFile="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$q"/*.container); do
  mkdir -p "$(dirname "$f")"
  echo "STANDIN_ENV_FILE=read" > "$f"
done

mkdir -p /etc/containers/systemd
cp "$q"/* /etc/containers/systemd/
cp "$data"/systemd/* /etc/systemd/system/
systemctl daemon-reload
ls /run/systemd/generator/ > "$out/generated-units"
timers=$(cd "$data/systemd" && ls *.timer)
jobs=$(cd "$data/systemd" && ls *.service)
systemctl enable --now $timers
cat "$data/roots" > "$out/roots"
timeout 600 systemctl start $(cat "$data/roots")
echo $? > "$out/start-rc"
for f in "$q"/*; do
  b=$(basename "$f")
  case "$b" in
    *.container) u=${b%.container}.service ;;
    *.network) u=${b%.network}-network.service ;;
    *.volume) u=${b%.volume}-volume.service ;;
    *) continue ;;
  esac
  systemctl show -p ActiveState,SubState,Result,ActiveEnterTimestampMonotonic,InactiveExitTimestampMonotonic "$u" > "$out/$u.show"
done
podman ps -a --format '{{.Names}} {{.Status}}' > "$out/ps"
for c in $(podman ps -a --format '{{.Names}}'); do
  podman inspect --format '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c"
done > "$out/health"
busybox wget -q -O - http://127.0.0.1:3001/ > "$out/http" 2>&1
podman exec nextcloud sh -c 'echo "env file: $STANDIN_ENV_FILE"; test -n "$NEXTCLOUD_ADMIN_PASSWORD" && echo "env secret: set"; test -s /run/secrets/pg-password && echo "file secret: set"' > "$out/nextcloud-inputs" 2>&1
systemctl list-timers --all --no-pager > "$out/timers"
for j in $jobs; do
  timeout 120 systemctl start "$j"
  echo $? > "$out/$j.rc"
  systemctl show -p Result,ExecMainStatus "$j" > "$out/$j.show"
  journalctl -b --no-pager -o cat -u "$j" > "$out/$j.journal"
done
podman exec postgres sh -c 'zcat /var/lib/postgresql/data/dump-*.sql.gz' > "$out/dump" 2>&1
units=$(cd "$q" && ls *.container | sed 's/\.container$/.service/')
journalctl -b --no-pager $(for u in $units; do printf -- '-u %s ' "$u"; done) > "$out/journal"

# Leave nothing behind for later scenarios.
systemctl disable --now $timers
systemctl stop $units
for f in "$q"/*; do rm -f "/etc/containers/systemd/$(basename "$f")"; done
for f in "$data"/systemd/*; do rm -f "/etc/systemd/system/$(basename "$f")"; done
systemctl daemon-reload
podman rm -af >/dev/null 2>&1
podman secret rm -a >/dev/null 2>&1
podman volume prune -f >/dev/null 2>&1
podman network prune -f >/dev/null 2>&1
while read -r app image ports; do podman rmi -f "$image" </dev/null >/dev/null 2>&1; done < "$data/standins"
true
