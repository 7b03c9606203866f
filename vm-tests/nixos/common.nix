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

  # Loads the test images before any container starts (no registry in the
  # test VM); ordered before the apps' units whatever their names.
  loadImages = images: apps: backend: {
    systemd.services.windlass-test-image = {
      wantedBy = [ "multi-user.target" ];
      before = map (unit backend) apps;
      requiredBy = map (unit backend) apps;
      path = [ pkgs.podman ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = builtins.concatStringsSep "\n" (map (i: "podman load -i ${i}") images);
    };
  };
  loadImage = loadImages [ image ];

  # Scenario 1 runs the example fleet (examples/), whose images cannot be
  # pulled in a test VM. What stands in for each image, and what the fleet
  # needs from its host, as the Debian harness has it
  # (`windlass_vm_tests::standins` and 01-generate-run.sh; a test,
  # vm-tests/tests/nixos_twins.rs, holds this table equal to the fleet).
  examples = {
    standins = {
      bitcoind = {
        image = "docker.io/lncm/bitcoind:v27.0";
        ports = [ 8333 ];
      };
      caddy = {
        image = "docker.io/library/caddy:2.8.4";
        ports = [
          80
          443
          2019
        ];
      };
      lnd = {
        image = "docker.io/lightninglabs/lnd:v0.18.3-beta";
        ports = [
          9735
          10009
        ];
      };
      nextcloud = {
        image = "docker.io/library/nextcloud:29.0.7-apache";
        ports = [
          80
          8080
        ];
      };
      postgres = {
        image = "docker.io/library/postgres:16.4-bookworm";
        ports = [ ];
      };
      redis = {
        image = "docker.io/library/redis:7.4-alpine";
        ports = [ ];
      };
      uptime = {
        image = "docker.io/louislam/uptime-kuma:1.23.15";
        ports = [ 3001 ];
      };
    };
    # Podman secrets, bind-mount sources, environment files, and the
    # targets of named volumes (world-writable in the stand-in, so an app
    # running as another user, postgres as 999, can write to its own).
    secrets = [
      "bitcoind-rpcauth"
      "lnd-wallet-password"
      "nextcloud-admin-password"
      "pg-password"
    ];
    dirs = [
      "/etc/caddy"
      "/srv/nextcloud/config"
      "/var/lib/lnd/conf"
      "/var/lib/uptime-kuma"
    ];
    envFiles = [ "/etc/nextcloud/extra.env" ];
    volumeTargets = [
      "/data"
      "/var/lib/postgresql/data"
      "/var/www/html"
    ];
  };

  # The stand-in: busybox; /standin/run as the entrypoint (serves a page on
  # $STANDIN_PORTS, then waits for SIGTERM); /standin/cli in place of every
  # program the fleet's commands, health checks and jobs call (prints its
  # name, uid and arguments). One image per app, named as the app's image.
  standinRoot = pkgs.buildEnv {
    name = "windlass-standin-root";
    paths = [ pkgs.busybox ];
    pathsToLink = [ "/bin" ];
  };
  standinFiles = ''
    mkdir -p standin usr/local/bin www/config etc tmp
    chmod 1777 tmp
    for f in index.html config/index.html status.php; do
      echo "windlass stand-in" > "www/$f"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n' > etc/passwd
    printf 'root:x:0:\nwww-data:x:33:\npostgres:x:999:\n' > etc/group
    cp ${../standin/run} standin/run
    cp ${../standin/cli} standin/cli
    chmod 755 standin/run standin/cli
    for c in bitcoin-cli lncli curl pg_isready redis-cli php pg_dump vacuumdb; do
      ln -s /standin/cli "usr/local/bin/$c"
    done
    ln -s /standin/run usr/local/bin/caddy
    ln -s /standin/run usr/local/bin/lnd
    for t in ${builtins.concatStringsSep " " examples.volumeTargets}; do
      mkdir -p ".$t" && chmod 1777 ".$t"
    done
  '';
  standinImages = builtins.attrValues (
    builtins.mapAttrs (
      app: s:
      let
        ref = builtins.match "(.*):([^:/]*)" s.image;
      in
      pkgs.dockerTools.buildImage {
        name = builtins.elemAt ref 0;
        tag = builtins.elemAt ref 1;
        copyToRoot = standinRoot;
        extraCommands = standinFiles;
        config = {
          Entrypoint = [ "/standin/run" ];
          Env = [
            "PATH=/usr/local/bin:/bin"
            "STANDIN_APP=${app}"
            "STANDIN_PORTS=${builtins.concatStringsSep "," (map toString s.ports)}"
          ];
        };
      }
    ) examples.standins
  );
  # The host side: the secrets, directories and environment files, ready
  # before any app starts.
  exampleInputs = backend: {
    systemd.services.windlass-test-inputs = {
      wantedBy = [ "multi-user.target" ];
      before = map (unit backend) (builtins.attrNames examples.standins);
      requiredBy = map (unit backend) (builtins.attrNames examples.standins);
      path = [ pkgs.podman ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = builtins.concatStringsSep "\n" (
        map (
          s: "printf 'stand-in value of %s' ${s} | podman secret create --replace ${s} -"
        ) examples.secrets
      );
    };
    systemd.tmpfiles.rules =
      map (d: "d ${d} 0755 root root -") examples.dirs
      ++ map (f: "f ${f} 0644 root root - STANDIN_ENV_FILE=read") examples.envFiles;
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
