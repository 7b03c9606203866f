# Scenario 3, switch, healthy (Debian twin:
# `switch_healthy_restarts_only_the_changed_app`): windlassd switches from
# generation A to B (web changed); the switch commits; only web was
# restarted (db keeps its PID); web runs B; B is selected and running.
{ common, ... }:
{
  name = "windlass-switch-healthy";
  nodes.machine = common.agentHost;
  testScript = common.agentPrelude + ''
    assert prop("windlassd.service", "ActiveState") == "active"
    before = {u: prop(f"{u}.service", "MainPID") for u in ["db", "web"]}
    assert before["db"] != "0", before
    rc, out, err = ctl(f"switch {gen['b']}")
    assert rc == 0, f"switch to B: {out}{err}"
    assert out.strip() == "committed", out
    after = {u: prop(f"{u}.service", "MainPID") for u in ["db", "web"]}
    for u in ["db", "web"]:
        assert prop(f"{u}.service", "ActiveState") == "active", u
    assert before["db"] == after["db"], "db was not restarted"
    assert before["web"] != after["web"], "web was restarted"
    assert "MARK=b" in web_env().splitlines(), "web runs generation B"
    assert running() == top["b"]
    s = status()
    assert (s["selected"], s["running"]) == (gen["b"], gen["b"]), s
  '';
}
