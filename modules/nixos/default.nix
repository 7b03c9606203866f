# NixOS module for windlass: the host agent `windlassd` (services.windlass),
# its D-Bus policy, state directory and sweep timer, and optionally a fleet
# directory whose generated module is applied (services.windlass.apps).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.windlass;
  inherit (lib) mkOption types;

  # The fleet module, generated at evaluation time from cfg.apps (import
  # from derivation). Its files are module functions whose `config` has a
  # fixed set of top-level attributes (assertions, environment, system,
  # systemd, virtualisation, windlass), so they are merged here attribute
  # by attribute, without `imports` depending on configuration.
  generated = pkgs.runCommand "windlass-fleet" { nativeBuildInputs = [ cfg.package ]; } ''
    windlass generate ${cfg.apps} -o out --target nixos --nixos-backend ${cfg.backend}
    cp -r out/nixos $out
  '';
  fleetFiles = [
    "${generated}/fleet.nix"
  ]
  ++ map (n: "${generated}/apps/${n}") (builtins.attrNames (builtins.readDir "${generated}/apps"));
  fleetConfigs =
    if cfg.apps == null then
      [ ]
    else
      map (f: (import f { inherit config lib pkgs; }).config) fleetFiles;
  fromFleet =
    key:
    lib.mkIf (cfg.enable && cfg.apps != null) (
      lib.mkMerge (map (c: c.${key} or (if key == "assertions" then [ ] else { })) fleetConfigs)
    );

  # A cutover target as windlassd reads it (agent/src/targets.rs): TOML
  # keys, null options left out; a JSON string is a valid TOML string.
  targetToml =
    t:
    let
      keys = {
        link = t.link;
        unit = t.unit;
        health_http = t.healthHttp;
        deadline = t.deadline;
        keep = t.keep;
        max_bytes = t.maxBytes;
        self_test_timeout = t.selfTestTimeout;
        agent = t.agent;
      };
    in
    builtins.concatStringsSep "" (
      map (k: "${k} = ${builtins.toJSON keys.${k}}\n") (
        builtins.filter (k: keys.${k} != null) (builtins.attrNames keys)
      )
    );
  targetOptions = {
    options = {
      link = mkOption {
        type = types.str;
        example = "/usr/local/bin/fleet-agent";
        description = "The path that is swapped (a symlink into /var/lib/windlass/artifacts once adopted).";
      };
      unit = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "fleet-agent.service";
        description = "The unit restarted after the swap and required active by the confirmation.";
      };
      healthHttp = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "An http(s) URL that must answer 2xx before the cutover commits.";
      };
      deadline = mkOption {
        type = types.int;
        default = 60;
        description = "Seconds the new version may take to be active and healthy.";
      };
      keep = mkOption {
        type = types.int;
        default = 3;
        description = "Versions kept on disk (at least 2; never the running or the previous one is removed).";
      };
      maxBytes = mkOption {
        type = types.int;
        default = 268435456;
        description = "Download size cap.";
      };
      selfTestTimeout = mkOption {
        type = types.int;
        default = 30;
        description = "Seconds `<new> --self-test` may take.";
      };
      agent = mkOption {
        type = types.bool;
        default = false;
        description = "The target is windlassd itself (self-upgrade).";
      };
    };
  };

  policy = pkgs.writeTextDir "share/dbus-1/system.d/io.windlass.Agent1.conf" ''
    <?xml version="1.0"?>
    <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
     "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
    <busconfig>
      <policy user="root">
        <allow own="io.windlass.Agent1"/>
        <allow send_destination="io.windlass.Agent1"/>
      </policy>
      <policy group="${cfg.group}">
        <allow send_destination="io.windlass.Agent1"/>
      </policy>
      <policy context="default">
        <allow send_destination="io.windlass.Agent1" send_interface="org.freedesktop.DBus.Introspectable"/>
        <allow send_destination="io.windlass.Agent1" send_interface="org.freedesktop.DBus.Peer"/>
        <allow send_destination="io.windlass.Agent1" send_interface="org.freedesktop.DBus.Properties" send_member="Get"/>
        <allow send_destination="io.windlass.Agent1" send_interface="org.freedesktop.DBus.Properties" send_member="GetAll"/>
        <allow send_destination="io.windlass.Agent1" send_interface="io.windlass.Agent1" send_member="Status"/>
        <allow send_destination="io.windlass.Agent1" send_interface="io.windlass.Agent1" send_member="ListGenerations"/>
      </policy>
    </busconfig>
  '';
in
{
  imports = [
    # The options every generated fleet module declares (same `key`, so a
    # fleet module imported directly as well is not declared twice).
    ../../templates/nixos/options.nix.j2
  ];

  options.services.windlass = {
    enable = lib.mkEnableOption "windlassd, the windlass host agent (D-Bus service io.windlass.Agent1)";

    package = lib.mkPackageOption pkgs "windlass" { };

    group = mkOption {
      type = types.strMatching "[a-z_][a-z0-9_-]*";
      default = "windlass";
      description = ''
        Group whose members may call the agent's mutating D-Bus methods
        (Stage, StageFd, Switch, Rollback, Confirm, Cutover, Sweep, Cancel,
        ScanDrift, Restore). Reading
        is open to everyone; root may always change.
      '';
    };

    stateDirectory = mkOption {
      type = types.str;
      default = "/var/lib/windlass";
      readOnly = true;
      description = "Where windlassd keeps operations, generations and promoted releases.";
    };

    sweep = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether a timer runs `windlassctl sweep` to move apps to their newest good release.";
      };
      schedule = mkOption {
        type = types.str;
        default = "weekly";
        example = "Mon *-*-* 04:00:00";
        description = "When the sweep runs (systemd OnCalendar expression).";
      };
    };

    driftScan = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether a timer runs `windlassctl drift scan` (a full drift scan,
          which catches what the agent's event watching missed) an hour
          after boot and every 6 hours; the wakeup is systemd's, not the
          agent's.
        '';
      };
    };

    cutover = {
      targets = mkOption {
        type = types.attrsOf (types.submodule targetOptions);
        default = { };
        description = ''
          Binaries windlassd may move to a new version (`windlassctl cutover
          NAME VERSION URL SHA256`), written to /etc/windlass/targets/NAME.toml.
        '';
      };
      extraCertificates = mkOption {
        type = types.listOf types.path;
        default = [ ];
        description = "Extra trusted root certificates (PEM) for cutover downloads.";
      };
    };

    apps = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = lib.literalExpression "./apps";
      description = ''
        A windlass fleet directory (manifests). Its NixOS module is generated
        while the system is evaluated and applied here, so the generated files
        need not be committed. Leave null when you import a generated
        `nixos/` directory yourself.
      '';
    };

    backend = mkOption {
      type = types.enum [
        "oci-containers"
        "quadlet"
      ];
      default = "oci-containers";
      description = "How the fleet given in `apps` runs its containers.";
    };
  };

  config = {
    assertions = fromFleet "assertions";
    environment = lib.mkMerge [
      (lib.mkIf cfg.enable { systemPackages = [ cfg.package ]; })
      (lib.mkIf cfg.enable {
        etc = lib.mapAttrs' (
          name: t: lib.nameValuePair "windlass/targets/${name}.toml" { text = targetToml t; }
        ) cfg.cutover.targets;
      })
      (fromFleet "environment")
    ];
    system = fromFleet "system";
    virtualisation = fromFleet "virtualisation";
    windlass = fromFleet "windlass";

    services = lib.mkIf cfg.enable { dbus.packages = [ policy ]; };
    users = lib.mkIf cfg.enable { groups.${cfg.group} = { }; };

    systemd = lib.mkMerge [
      (fromFleet "systemd")
      (lib.mkIf cfg.enable {
        services.windlassd = {
          description = "windlass host agent";
          documentation = [ "man:windlassd(8)" ];
          wantedBy = [ "multi-user.target" ];
          after = [ "dbus.service" ];
          requires = [ "dbus.service" ];
          # The commit sets the system profile with nix-env (run through
          # systemd-run, which finds it on this PATH); lifecycle hooks are
          # `podman run` lines whose bare `podman` the agent looks up here.
          path = [ config.nix.package pkgs.podman ];
          # Never stop or restart the agent in the middle of a switch it runs:
          # the next operation (or a restart by hand) picks up the new binary.
          restartIfChanged = false;
          stopIfChanged = false;
          serviceConfig = {
            Type = "dbus";
            BusName = "io.windlass.Agent1";
            ExecStart = lib.escapeShellArgs (
              [
                "${cfg.package}/bin/windlassd"
                "--bus"
                "system"
                "--state-dir"
                cfg.stateDirectory
                "--run-dir"
                "/run/windlass"
                "--group"
                cfg.group
                "--platform"
                "nixos"
                "--targets"
                "/etc/windlass/targets"
              ]
              ++ builtins.concatMap (c: [
                "--extra-ca"
                "${c}"
              ]) cfg.cutover.extraCertificates
            );
            Restart = "on-failure";
            StateDirectory = "windlass";
            StateDirectoryMode = "0750";
            RuntimeDirectory = "windlass";
            RuntimeDirectoryPreserve = "yes";
            UMask = "0077";
            # Bounds on the agent itself (see agent/systemd/windlassd.service).
            MemoryMax = "512M";
            TasksMax = 256;
            # Activation runs in transient units started through systemd,
            # outside this sandbox; the agent itself needs little.
            ProtectHome = true;
            PrivateTmp = true;
            ProtectKernelModules = true;
            ProtectKernelLogs = true;
            ProtectClock = true;
            ProtectHostname = true;
            RestrictRealtime = true;
            RestrictSUIDSGID = true;
            RestrictNamespaces = true;
            LockPersonality = true;
            MemoryDenyWriteExecute = true;
            SystemCallArchitectures = "native";
            RestrictAddressFamilies = [
              "AF_UNIX"
              "AF_INET"
              "AF_INET6"
            ];
          };
        };
        services.windlass-sweep = lib.mkIf cfg.sweep.enable {
          description = "windlass sweep: move apps to their newest good release";
          after = [ "windlassd.service" ];
          requires = [ "windlassd.service" ];
          serviceConfig = {
            Type = "oneshot";
            ExecStart = "${cfg.package}/bin/windlassctl --bus system sweep";
          };
        };
        services.windlass-drift-scan = lib.mkIf cfg.driftScan.enable {
          description = "windlass drift scan: compare the host with the running generation";
          after = [ "windlassd.service" ];
          requires = [ "windlassd.service" ];
          serviceConfig = {
            Type = "oneshot";
            ExecStart = "${cfg.package}/bin/windlassctl --bus system drift scan";
          };
        };
        timers.windlass-drift-scan = lib.mkIf cfg.driftScan.enable {
          description = "windlass drift scan timer";
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnActiveSec = "1h";
            OnUnitActiveSec = "6h";
            AccuracySec = "1h";
          };
        };
        timers.windlass-sweep = lib.mkIf cfg.sweep.enable {
          description = "windlass sweep timer";
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnCalendar = cfg.sweep.schedule;
            Persistent = true;
            RandomizedDelaySec = "1h";
          };
        };
      })
    ];
  };
}
