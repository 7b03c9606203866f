# Shared pieces of the NixOS VM tests.
{ pkgs, self }:
rec {
  # The test image of the Debian harness, built with pkgs.dockerTools
  # instead of `podman import`: busybox plus a page to serve.
  page = pkgs.writeTextDir "www/index.html" "windlass test page\n";
  image = pkgs.dockerTools.buildImage {
    name = "localhost/windlass-test/busybox";
    tag = "1.0";
    copyToRoot = pkgs.buildEnv {
      name = "windlass-test-root";
      paths = [
        pkgs.busybox
        page
      ];
      pathsToLink = [
        "/bin"
        "/www"
      ];
    };
    config.Cmd = [ "/bin/sh" ];
  };

  # The generated module of a fleet directory, for a backend.
  fleet =
    dir: backend:
    self.lib.fleetModule {
      inherit pkgs backend;
      fleet = dir;
    };

  # The service name of an app under a backend.
  unit = backend: app: if backend == "quadlet" then "${app}.service" else "podman-${app}.service";

  # Loads the test image before any container starts (no registry in the
  # test VM); ordered before the apps' units whatever their names.
  loadImage = apps: backend: {
    systemd.services.windlass-test-image = {
      wantedBy = [ "multi-user.target" ];
      before = map (unit backend) apps;
      requiredBy = map (unit backend) apps;
      path = [ pkgs.podman ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = "podman load -i ${image}";
    };
  };

  # The generations of the agent scenarios, as in the Debian harness
  # (vm-tests/tests/debian.rs, `agent_generations`): A is the basic fleet;
  # B: web gets MARK=b; C: B whose web health check never passes, with a
  # 25 s deadline; D: web gets MARK=d and answers (turns healthy) only 6 s
  # after it starts, which holds a switch in its activation that long.
  webToml = builtins.readFile ../fleets/basic/apps/web.toml;
  markB =
    builtins.replaceStrings
      [ "networks = [\"vmnet\"]\n" ]
      [ "networks = [\"vmnet\"]\nenv = { MARK = \"b\" }\n" ];
  variant =
    name: web:
    pkgs.runCommand "windlass-vm-fleet-${name}" { } ''
      cp -r ${../fleets/basic} $out
      chmod -R u+w $out
      cp ${pkgs.writeText "web.toml" web} $out/apps/web.toml
    '';
  # web.toml of B, C and D (CI checks each edit took).
  webTomls = {
    b = markB webToml;
    c =
      builtins.replaceStrings
        [ "cmd = [\"/bin/wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/\"]" ]
        [ "cmd = [\"/bin/false\"]" ]
        (markB webToml)
      + "\n[update]\nhealth_deadline = \"25s\"\n";
    d =
      builtins.replaceStrings
        [
          "entrypoint = [\"/bin/httpd\"]\ncommand = [\"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
          "networks = [\"vmnet\"]\n"
        ]
        [
          "entrypoint = [\"/bin/sh\", \"-c\"]\ncommand = [\"sleep 6; exec httpd -f -p 8080 -h /www\"]\n"
          "networks = [\"vmnet\"]\nenv = { MARK = \"d\" }\n"
        ]
        webToml;
  };
  generations = {
    a = ../fleets/basic;
    b = variant "b" webTomls.b;
    c = variant "c" webTomls.c;
    d = variant "d" webTomls.d;
  };

  # A host with windlassd (services.windlass) running generation A through
  # Quadlet, as the Debian harness does; B, C and D are specialisations,
  # which the test script (`agentPrelude`) turns into profile generations.
  agentHost =
    { lib, ... }:
    {
      imports = [
        self.nixosModules.default
        (loadImage [
          "db"
          "web"
        ] "quadlet")
      ];
      services.windlass = {
        enable = true;
        apps = generations.a;
        backend = "quadlet";
      };
      specialisation = lib.mapAttrs (_: fleet: {
        configuration.services.windlass.apps = lib.mkForce fleet;
      }) { inherit (generations) b c d; };
      virtualisation.podman.enable = true;
      virtualisation.memorySize = 2048;
    };

  # Python shared by the agent scenarios: waits for the agent, makes the
  # specialisations B, C, D profile generations beside A (the profile stays
  # on A, so A is selected and running, as after `windlassctl switch A` in
  # the Debian harness), and helpers that collect the same facts.
  agentPrelude = ''
    import json, time

    def sh(cmd):
        return machine.succeed(cmd)

    def prop(unit, key):
        return sh(f"systemctl show -p {key} --value {unit}").strip()

    def web_env():
        return sh("podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' web")

    def status():
        return json.loads(sh("windlassctl --json status"))

    def ctl(args):
        """windlassctl ARGS → (exit code, stdout, stderr)."""
        rc, out = machine.execute(f"windlassctl {args} 2>/tmp/ctl.err")
        return rc, out, sh("cat /tmp/ctl.err")

    def record(op):
        return json.loads(sh(f"cat /var/lib/windlass/operations/{op}.json"))

    def phase_seconds(rec, start, end):
        """Seconds from the record's first `start` step to its first `end`."""
        at = {}
        for phase, t in rec["history"]:
            at.setdefault(phase, t)
        return at[end] - at[start]

    def running():
        return sh("readlink -f /run/current-system").strip()

    machine.wait_for_unit("multi-user.target")
    machine.wait_for_unit("windlassd.service")
    machine.wait_for_unit("web.service")
    top = {"a": running()}
    for g in "bcd":
        top[g] = sh(f"readlink -f /run/current-system/specialisation/{g}").strip()
    profile = "/nix/var/nix/profiles/system"
    for g in "abcd":
        sh(f"nix-env -p {profile} --set {top[g]}")

    def generation_of(path):
        for link in sh("ls /nix/var/nix/profiles").split():
            if link.startswith("system-") and link.endswith("-link"):
                if sh(f"readlink -f /nix/var/nix/profiles/{link}").strip() == path:
                    return link[len("system-") : -len("-link")]
        raise AssertionError(f"no profile generation is {path}")

    gen = {g: generation_of(top[g]) for g in "abcd"}
    sh(f"nix-env -p {profile} --switch-generation {gen['a']}")
    s = status()
    assert (s["selected"], s["running"]) == (gen["a"], gen["a"]), s
  '';
}
