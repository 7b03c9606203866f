# Scenario 6, manual confirm (Debian twin:
# `manual_confirm_reverts_unconfirmed_and_commits_confirmed`): a switch with
# --confirm manual that nobody confirms is reverted at its deadline; a
# confirmed one commits.
{ common, ... }:
{
  name = "windlass-manual-confirm";
  nodes.machine = common.agentHost;
  testScript = common.agentPrelude + ''
    rc, out, err = ctl(f"switch {gen['b']} --confirm manual --deadline 30")
    assert rc == 3, f"{out}{err}"
    assert "not confirmed within 30 s" in err, err
    assert status()["selected"] == gen["a"]
    assert running() == top["a"], "reverted to A"
    op = sh(f"windlassctl switch {gen['b']} --confirm manual --deadline 120 --no-wait").strip()
    machine.wait_until_succeeds(
        f"busctl --system get-property io.windlass.Agent1 {op} io.windlass.Operation1 Phase | grep -q waiting-confirm",
        timeout=120,
    )
    op_id = op.rsplit("/", 1)[1]
    sh(f"windlassctl confirm {op_id}")
    rc, out, err = ctl(f"watch {op_id}")
    assert rc == 0, err
    assert out.strip() == "committed", out
    s = status()
    assert (s["selected"], s["running"]) == (gen["b"], gen["b"]), s
  '';
}
