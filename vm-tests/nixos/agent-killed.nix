# Scenario 5, agent killed mid-switch (Debian twin:
# `agent_killed_mid_switch_is_resolved_by_its_restart_or_the_external_revert`).
# Generation D's web turns healthy only 6 s after it starts, which holds a
# switch in its activation.
#  1. SIGKILL to windlassd during the switch to D: systemd restarts it, its
#     recovery rolls the switch back, the record says so, A runs again.
#  2. The same with the agent kept down (a runtime drop-in Restart=no):
#     the revert timer armed outside the agent (deadline 5 s + 60 s) fires
#     `windlassd --revert`, which rolls back from the record.
{ common, ... }:
{
  name = "windlass-agent-killed";
  nodes.machine = common.agentHost;
  testScript = common.agentPrelude + ''
    def kill_in_activation(op):
        """Kills windlassd with SIGKILL once op is activating; returns the
        phase seen and the killed PID."""
        deadline = time.monotonic() + 60
        phase = ""
        while time.monotonic() < deadline:
            phase = record(op)["phase"]
            if phase in ("activating", "health-gate"):
                break
            time.sleep(0.1)
        pid = prop("windlassd.service", "MainPID")
        sh(f"kill -KILL {pid}")
        return phase, pid

    def wait_finished(op, timeout):
        machine.wait_until_succeeds(
            f"grep -q '\"result\": \"' /var/lib/windlass/operations/{op}.json", timeout=timeout
        )
        return record(op)

    def check(part, op, phase, rec):
        assert phase in ("activating", "health-gate"), f"part {part}: killed during {phase!r}"
        assert rec["to_generation"] == gen["d"], rec
        assert rec["from_generation"] == gen["a"], rec
        assert rec["result"] == "rolled-back", rec
        assert f"interrupted during {phase}" in rec["error"], rec["error"]
        phases = [p[0] for p in rec["history"]]
        at = phases.index("rolling-back")
        assert phases[at - 1] == phase, phases
        assert phases[-1] == "finished", phases
        assert running() == top["a"], f"part {part}: A runs"
        assert prop("web.service", "ActiveState") == "active"
        env = web_env()
        assert "MARK=d" not in env and "MARK=b" not in env, f"part {part}: web runs A: {env}"
        revert = sh("systemctl list-units --all --no-pager --plain 'windlass-revert*'")
        assert "windlass-revert" not in revert, revert

    with subtest("killed, restarted by systemd, rolled back by its recovery"):
        op = sh(f"windlassctl switch {gen['d']} --no-wait").strip().rsplit("/", 1)[1]
        phase, pid = kill_in_activation(op)
        rec = wait_finished(op, 300)
        check(1, op, phase, rec)
        assert prop("windlassd.service", "ActiveState") == "active"
        assert prop("windlassd.service", "NRestarts") == "1"
        assert prop("windlassd.service", "MainPID") != pid, "a new windlassd process"
        rc, out, err = ctl(f"watch {op}")
        assert rc == 3, err
        assert out.strip() == "rolled-back", out
        s = status()
        assert (s["selected"], s["running"]) == (gen["a"], gen["a"]), s

    with subtest("killed and kept down: the external revert fires"):
        sh("mkdir -p /run/systemd/system/windlassd.service.d")
        sh("printf '[Service]\\nRestart=no\\n' > /run/systemd/system/windlassd.service.d/stay-down.conf")
        sh("systemctl daemon-reload")
        op = sh(f"windlassctl switch {gen['d']} --deadline 5 --no-wait").strip().rsplit("/", 1)[1]
        phase, pid = kill_in_activation(op)
        time.sleep(2)
        assert prop("windlassd.service", "ActiveState") != "active", "the agent stays down"
        timers = sh(f"systemctl list-timers --all --no-pager 'windlass-revert-{op}*'")
        assert f"windlass-revert-{op}" in timers, timers
        rec = wait_finished(op, 240)
        check(2, op, phase, rec)
        fired = phase_seconds(rec, "arming", "rolling-back")
        assert 65 <= fired < 65 + 30, f"the revert fired {fired} s after it was armed"
        assert prop("windlassd.service", "ActiveState") == "failed"
        journal = sh(f"journalctl --no-pager -o cat -u windlass-revert-{op}.service")
        assert f"operation {op}: rolled-back" in journal, journal
        sh("rm -r /run/systemd/system/windlassd.service.d && systemctl daemon-reload")
        sh("systemctl reset-failed windlassd.service && systemctl start windlassd.service")
        s = status()
        assert (s["selected"], s["running"]) == (gen["a"], gen["a"]), s
  '';
}
