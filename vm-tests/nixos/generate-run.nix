# Scenario 1, generate → run (Debian twin: `generate_then_run`): the basic
# fleet's generated module starts db and web through the backend; web
# requires db, which is active (healthy, Notify=healthy / sdnotify) before
# web starts; both are healthy; the published port serves the page; the
# job's timer is listed and, triggered, runs its command with its argv.
{
  pkgs,
  self,
  common,
  backend,
}:
let
  db = common.unit backend "db";
  web = common.unit backend "web";
in
{
  name = "windlass-generate-run-${backend}";
  nodes.machine = {
    imports = [
      (common.fleet ../fleets/basic backend)
      (common.loadImage [
        "db"
        "web"
      ] backend)
    ];
    virtualisation.podman.enable = true;
    virtualisation.memorySize = 2048;
  };
  testScript = ''
    machine.wait_for_unit("multi-user.target")
    machine.succeed("systemctl start ${web}")
    for u in ["${db}", "${web}"]:
        state = machine.succeed(f"systemctl show -p ActiveState --value {u}").strip()
        assert state == "active", f"{u}: {state}"
    db_active = int(machine.succeed("systemctl show -p ActiveEnterTimestampMonotonic --value ${db}"))
    web_start = int(machine.succeed("systemctl show -p InactiveExitTimestampMonotonic --value ${web}"))
    assert 0 < db_active <= web_start, f"db active at {db_active}, web started at {web_start}"
    health = machine.succeed("podman inspect --format '{{.Name}} {{.State.Health.Status}}' db web")
    assert "db healthy" in health and "web healthy" in health, health
    page = machine.succeed("busybox wget -q -O - http://127.0.0.1:8080/ || ${pkgs.curl}/bin/curl -s http://127.0.0.1:8080/")
    assert page.strip() == "windlass test page", page
    timers = machine.succeed("systemctl list-timers --all --no-pager")
    assert "web-stamp.timer" in timers, timers
    machine.succeed("systemctl start web-stamp.service")
    job = machine.succeed("cat /run/windlass-vmtest-job")
    assert job == "job ran: arg with space %n\n", repr(job)
    generation = machine.succeed("cat /etc/windlass/generation.json")
    import json
    apps = [a["name"] for a in json.loads(generation)["apps"]]
    assert apps == ["db", "web"], apps
  '';
}
