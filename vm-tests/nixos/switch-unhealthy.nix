# Scenario 4, switch, unhealthy → automatic rollback (Debian twin:
# `switch_unhealthy_rolls_back_on_its_own`): generation C's web never turns
# healthy; the gate gives up at its 25 s deadline and the switch is rolled
# back, windlassctl exits 3, A runs again, the journal holds
# the operation's story and web's lines under WINDLASS_OPERATION, and the
# revert timer is disarmed.
{ common, ... }:
{
  name = "windlass-switch-unhealthy";
  nodes.machine = common.agentHost;
  testScript = common.agentPrelude + ''
    start = time.monotonic()
    rc, out, err = ctl(f"--json switch {gen['c']}")
    elapsed = time.monotonic() - start
    assert rc == 3, f"windlassctl exits with the rolled-back code: {out}{err}"
    v = json.loads(out)
    assert v["result"] == "rolled-back", v
    assert "not healthy within 25 s" in v["error"], v["error"]
    assert "last journal lines of web.service" in v["error"], v["error"]
    op = v["operation"].rsplit("/", 1)[1]
    gate = phase_seconds(record(op), "health-gate", "rolling-back")
    assert 25 <= gate < 25 + 15, f"the gate gave up {gate} s after it began (deadline 25 s)"
    assert elapsed < 600, f"rolled back {elapsed} s after the switch"
    time.sleep(5)
    assert prop("web.service", "ActiveState") == "active", "the previous generation runs again"
    assert "MARK=b" not in web_env(), "web runs generation A again"
    assert running() == top["a"]
    s = status()
    assert (s["selected"], s["running"]) == (gen["a"], gen["a"]), s
    journal = sh(f"journalctl --no-pager -o cat WINDLASS_OPERATION={op}")
    assert "operation step" in journal, journal
    assert "web" in journal, journal
    revert = sh("systemctl list-units --all --no-pager --plain 'windlass-revert*'")
    assert "windlass-revert" not in revert, revert
  '';
}
