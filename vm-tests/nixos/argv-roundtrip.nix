# Scenario 2, argv round-trip (Debian twin:
# `argv_round_trip_through_quadlet_and_systemd`): the torture fleet's units
# run with a stand-in podman that records the argv of `podman run`
# (NUL-separated); env values, labels, entrypoint + command and the health
# command equal the manifests (read here with Python's tomllib) byte for
# byte.
{
  pkgs,
  self,
  common,
  backend,
}:
let
  torture = ../../generator/tests/fleets/torture;
  recorder = pkgs.writeShellScript "windlass-recorder" ''
    name=''${PODMAN_SYSTEMD_UNIT:-unknown}
    [ "''${1:-}" = run ] || exit 0
    mkdir -p /tmp/argv
    for a in "$@"; do printf '%s\000' "$a"; done > "/tmp/argv/$name"
    ${pkgs.systemd}/bin/systemd-notify --ready
    exec ${pkgs.coreutils}/bin/sleep infinity
  '';
in
{
  name = "windlass-argv-roundtrip-${backend}";
  nodes.machine = {
    imports = [ (common.fleet torture backend) ];
    virtualisation.podman.enable = true;
  };
  testScript = ''
    import base64, json, tomllib
    machine.wait_for_unit("multi-user.target")
    podman = machine.succeed("readlink -f $(command -v podman)").strip()
    machine.succeed(f"mount --bind ${recorder} {podman}")
    backend = "${backend}"
    apps = {}
    for name in ["torture", "plain"]:
        with open(f"${torture}/apps/{name}.toml", "rb") as f:
            apps[name] = tomllib.load(f)
    def unit(name):
        return f"{name}.service" if backend == "quadlet" else f"podman-{name}.service"
    for name in apps:
        machine.succeed(f"systemctl restart {unit(name)} || true")
    for name, m in apps.items():
        raw = machine.succeed(f"base64 -w0 /tmp/argv/{unit(name)}")
        argv = base64.b64decode(raw).decode().split("\0")
        assert argv.pop() == "", "NUL-terminated"
        def flag(*names):
            return [argv[i + 1] for i in range(len(argv) - 1) if argv[i] in names]
        c = m["container"]
        env = sorted(f"{k}={v}" for k, v in c.get("env", {}).items())
        assert sorted(flag("--env", "-e")) == env, (name, flag("--env", "-e"), env)
        labels = flag("--label", "-l")
        for k, v in c.get("labels", {}).items():
            assert f"{k}={v}" in labels, (name, k)
        tail = argv[argv.index(c["image"]) + 1 :]
        want = c.get("entrypoint", []) + c.get("command", [])
        got = (json.loads(flag("--entrypoint")[0]) if "entrypoint" in c else []) + tail
        assert got == want, (name, got, want)
        if "cmd" in m.get("health", {}):
            assert json.loads(flag("--health-cmd")[0]) == m["health"]["cmd"], name
  '';
}
