# Scenario 7, explicit rollback (Debian twin:
# `explicit_rollback_returns_to_an_older_generation`): after switches to A
# (at boot) and B, `windlassctl rollback A` commits and web runs A again.
{ common, ... }:
{
  name = "windlass-explicit-rollback";
  nodes.machine = common.agentHost;
  testScript = common.agentPrelude + ''
    rc, out, err = ctl(f"switch {gen['b']}")
    assert rc == 0, f"{out}{err}"
    assert "MARK=b" in web_env()
    rc, out, err = ctl(f"rollback {gen['a']}")
    assert rc == 0, err
    assert out.strip() == "committed", out
    assert "MARK=b" not in web_env(), "web runs generation A again"
    assert running() == top["a"]
    s = status()
    assert (s["selected"], s["running"]) == (gen["a"], gen["a"]), s
  '';
}
