# Scenario 1, generate → run (Debian twin: `generate_then_run`): the example
# fleet's generated module, with stand-ins for its images
# (`common.examples`), runs through the backend. Starting the apps nobody
# depends on brings up the rest through their dependencies, each active
# only once healthy (Notify=healthy / sdnotify); uptime's published port
# serves its page; nextcloud gets its environment file and both kinds of
# secret; every job's timer is listed and, triggered, runs its command in
# its container as the manifest wrote it.
{
  pkgs,
  self,
  common,
  backend,
}:
{
  name = "windlass-generate-run-${backend}";
  nodes.machine = {
    imports = [
      (common.fleet ../../examples backend)
      (common.loadImages common.standinImages (builtins.attrNames common.examples.standins) backend)
      (common.exampleInputs backend)
    ];
    virtualisation.podman.enable = true;
    virtualisation.memorySize = 3072;
  };
  testScript = ''
    import json

    def prop(unit, key):
        return machine.succeed(f"systemctl show -p {key} --value {unit}").strip()

    machine.wait_for_unit("multi-user.target")
    gen = json.loads(machine.succeed("cat /etc/windlass/generation.json"))
    apps = {a["name"]: a for a in gen["apps"]}
    assert sorted(apps) == ["bitcoind", "caddy", "lnd", "nextcloud", "postgres", "redis", "uptime"], apps
    depended = {d for a in apps.values() for d in a["requires"] + a["wants"]}
    roots = [a["unit"] for n, a in sorted(apps.items()) if n not in depended]
    machine.succeed("timeout 600 systemctl start " + " ".join(roots))
    for n, a in apps.items():
        assert prop(a["unit"], "ActiveState") == "active", n
        assert prop(a["unit"], "SubState") == "running", n
        if a["health"]["container_check"]:
            h = machine.succeed("podman inspect --format '{{.State.Health.Status}}' " + n).strip()
            assert h == "healthy", (n, h)
        start = int(prop(a["unit"], "InactiveExitTimestampMonotonic"))
        for d in a["requires"] + a["wants"]:
            active = int(prop(apps[d]["unit"], "ActiveEnterTimestampMonotonic"))
            assert 0 < active <= start, f"{d} active at {active}, {n} started at {start}"
    page = machine.succeed("${pkgs.curl}/bin/curl -s http://127.0.0.1:3001/")
    assert page.strip() == "windlass stand-in", page
    inputs = machine.succeed(
        "podman exec nextcloud sh -c 'echo \"env file: $STANDIN_ENV_FILE\"; "
        "test -n \"$NEXTCLOUD_ADMIN_PASSWORD\" && echo \"env secret: set\"; "
        "test -s /run/secrets/pg-password && echo \"file secret: set\"'"
    )
    assert inputs == "env file: read\nenv secret: set\nfile secret: set\n", repr(inputs)
    timers = machine.succeed("systemctl list-timers --all --no-pager")
    jobs = [j for a in apps.values() for j in a["jobs"]]
    assert len(jobs) == 4, jobs
    for j in jobs:
        assert f"{j}.timer" in timers, (j, timers)
        machine.succeed(f"systemctl start {j}.service")
        assert prop(f"{j}.service", "Result") == "success", j
    for j, line in [
        ("lnd-backup", "stand-in lncli as uid 0: exportchanbackup --all --output_file=/data/backup/channel.backup"),
        ("nextcloud-cron", "stand-in php as uid 33: -f /var/www/html/cron.php"),
        ("postgres-vacuum", "stand-in vacuumdb as uid 999: -U nextcloud --all --analyze-in-stages"),
    ]:
        log = machine.succeed(f"journalctl -b --no-pager -o cat -u {j}.service")
        assert line in log.splitlines(), (j, log)
    dump = machine.succeed("podman exec postgres sh -c 'zcat /var/lib/postgresql/data/dump-*.sql.gz'")
    assert dump == "stand-in pg_dump as uid 999: -U nextcloud nextcloud\n", repr(dump)
  '';
}
