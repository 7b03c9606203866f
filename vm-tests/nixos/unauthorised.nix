# Scenario 8, unauthorised caller (Debian twin:
# `unauthorised_callers_are_refused_over_the_system_bus`): a non-root user
# outside the group may read but is refused (exit 4, AccessDenied) on every
# mutating method over the real system bus, and nothing changes.
{ common, ... }:
{
  name = "windlass-unauthorised";
  nodes.machine = common.agentHost;
  testScript = common.agentPrelude + ''
    before = status()
    def nobody(args):
        return machine.execute(
            f"setpriv --reuid=65534 --regid=65534 --clear-groups -- windlassctl {args} 2>&1 >/dev/null"
        )
    rc, _ = nobody("status")
    assert rc == 0, "reading is open"
    for args in [
        "stage /tmp",
        f"switch {gen['b']}",
        f"rollback {gen['b']}",
        "confirm 000000000001x000",
        "cancel 000000000001x000",
    ]:
        rc, err = nobody(args)
        assert rc == 4, f"{args} refused with exit 4: {err}"
        assert "AccessDenied" in err, f"{args}: {err}"
    assert status() == before, "nothing changed"
  '';
}
