# Scenario 9, reboot before commit (Debian twin:
# `reboot_before_commit_boots_the_selected_generation`, native platform): a
# switch to B waits for a manual confirm, so B runs (switch-to-configuration
# test) but the profile still selects A; the machine crashes and boots A,
# the selected generation, and the agent resolves the interrupted switch as
# rolled back. Control: once B is committed, a crash boots B, so the boot
# follows the profile (systemd-boot entries written by the commit's
# `switch-to-configuration boot`), not the image the VM started from.
{ common, ... }:
{
  name = "windlass-reboot-before-commit";
  nodes.machine = {
    imports = [ common.agentHost ];
    virtualisation.useBootLoader = true;
    virtualisation.useEFIBoot = true;
    boot.loader.systemd-boot.enable = true;
    boot.loader.efi.canTouchEfiVariables = true;
  };
  testScript = common.agentPrelude + ''
    def reboot():
        machine.crash()
        machine.start()
        machine.wait_for_unit("multi-user.target")
        machine.wait_for_unit("windlassd.service")
        machine.wait_for_unit("web.service")

    with subtest("a reboot before the commit boots the selected generation, A"):
        op = sh(f"windlassctl switch {gen['b']} --confirm manual --deadline 600 --no-wait")
        op = op.strip().rsplit("/", 1)[1]
        machine.wait_until_succeeds(
            f"grep -q '\"phase\": \"waiting-confirm\"' /var/lib/windlass/operations/{op}.json",
            timeout=300,
        )
        assert running() == top["b"], "B runs before the reboot"
        assert "MARK=b" in web_env()
        assert status()["selected"] == gen["a"], "but A is still selected"
        reboot()
        assert running() == top["a"], "the machine booted A"
        assert "MARK=b" not in web_env(), "web runs A"
        machine.wait_until_succeeds(
            f"grep -q '\"result\": \"' /var/lib/windlass/operations/{op}.json", timeout=300
        )
        rec = record(op)
        assert rec["result"] == "rolled-back", rec
        assert "interrupted during waiting-confirm" in rec["error"], rec["error"]
        s = status()
        assert (s["selected"], s["running"]) == (gen["a"], gen["a"]), s

    with subtest("control: after the commit, a reboot boots B"):
        rc, out, err = ctl(f"switch {gen['b']}")
        assert rc == 0, f"{out}{err}"
        reboot()
        assert running() == top["b"], "the machine booted the committed generation"
        assert "MARK=b" in web_env()
        s = status()
        assert (s["selected"], s["running"]) == (gen["b"], gen["b"]), s
  '';
}
