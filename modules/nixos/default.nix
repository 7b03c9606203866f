# NixOS module for windlass: the host agent `windlassd` (services.windlass),
# its D-Bus policy, state directory and sweep timer, and optionally a fleet
# directory whose generated module is applied (services.windlass.apps).
# Fleet rollouts over NATS (docs/fleet.md): this host's member
# `windlass-fleetd` (services.windlass.fleet) and the coordinator
# `windlass-coordinator` (services.windlass.coordinator), the units of
# fleet/systemd/ in NixOS options.
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

  fleet = cfg.fleet;
  coordinator = cfg.coordinator;

  # One ExecStart= argument as systemd reads it: double-quoted (Nix's JSON
  # escapes are C escapes, which systemd unquotes), `%` and `$` doubled so
  # that systemd expands no specifier or variable in it, as nixpkgs'
  # utils.escapeSystemdExecArg does. `{ raw = "..."; }` is written as is.
  execArg =
    a:
    if builtins.isAttrs a then
      a.raw
    else
      builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON a);
  execLine = args: builtins.concatStringsSep " " (map execArg args);
  # A file of the unit's credentials directory (LoadCredential=NAME:...).
  credential = name: { raw = "%d/${name}"; };
  hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
  # A secret is named by a string path outside the store, which systemd
  # reads (as root) when the unit starts. Never a Nix path: that would
  # copy the secret into the world-readable store. No `%` (systemd
  # specifiers) and no line break: the path is written into the unit.
  secretFileOk =
    f:
    f == null
    || (
      builtins.isString f
      && builtins.match "/[^%\n]*" f != null
      && !(hasPrefix "${builtins.storeDir}/" f)
    );
  secretFileAssertion = option: f: {
    assertion = secretFileOk f;
    message = "${option} must be an absolute path outside the Nix store (without `%`), given as a string (\"/etc/windlass/...\"), not a Nix path: the file is read when the service starts and never copied into the world-readable store (got ${builtins.toJSON (toString f)})";
  };
  # NATS takes a token or user:password before `@`; the URL is written
  # into the unit, in the world-readable store.
  urlAssertion = option: instead: url: {
    assertion = builtins.match ".*://[^/]*@.*" url == null;
    message = "${option} must not carry credentials (the part before `@`): it is written into the world-readable Nix store; use ${instead}";
  };

  # The sandbox of fleet/systemd/windlass-fleetd.service and
  # windlass-coordinator.service (the same in both): no capabilities, the
  # network and D-Bus only. The coordinator runs as a dynamic user;
  # fleetd as the static user windlass-fleet (see below).
  # The sandbox keys windlassd's unit and the fleet's share.
  sandbox = {
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

  fleetSandbox = sandbox // {
    Type = "exec";
    Restart = "on-failure";
    RestartSec = "5s";
    UMask = "0077";
    TasksMax = 64;
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    ProtectSystem = "strict";
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectControlGroups = true;
  };


  fleetdArgs = [
    "${fleet.package}/bin/windlass-fleetd"
    "--bus"
    "system"
    "--state"
    "/var/lib/windlass-fleet"
    "--nats"
    fleet.natsUrl
    "--heartbeat-interval"
    (toString fleet.heartbeatInterval)
  ]
  ++ lib.optionals (fleet.host != null) [
    "--host"
    fleet.host
  ]
  ++ builtins.concatMap (k: [
    "--label"
    "${k}=${fleet.labels.${k}}"
  ]) (builtins.attrNames fleet.labels)
  ++ lib.optionals (fleet.credentialsFile != null) [
    "--creds"
    (credential "nats.creds")
  ]
  ++ lib.optionals (fleet.user != null) [
    "--user"
    fleet.user
    "--password-file"
    (credential "nats.password")
  ]
  ++ fleet.extraArgs;

  coordinatorArgs = [
    "${coordinator.package}/bin/windlass-coordinator"
    "--nats"
    coordinator.natsUrl
    "--lease-ttl"
    coordinator.leaseTtl
  ]
  ++ lib.optionals (coordinator.credentialsFile != null) [
    "--creds"
    (credential "nats.creds")
  ]
  ++ coordinator.extraArgs;
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

    fleet = {
      enable = lib.mkEnableOption ''
        windlass-fleetd, this host's member of a windlass fleet: it
        publishes the host's heartbeat to NATS and has the local windlassd
        carry out the rollout orders addressed to the host (docs/fleet.md).
        Needs services.windlass.enable'';

      package = mkOption {
        type = types.package;
        default = cfg.package;
        defaultText = lib.literalExpression "config.services.windlass.package";
        description = "The package providing `bin/windlass-fleetd`.";
      };

      natsUrl = mkOption {
        type = types.str;
        default = "nats://127.0.0.1:4222";
        example = "nats://nats.example:4222";
        description = ''
          The NATS server (JetStream, nats-server 2.10 or later). It is
          written into the unit, so it must not carry a token or a
          password: give credentialsFile or user and passwordFile.
        '';
      };

      credentialsFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/etc/windlass/fleetd.creds";
        description = ''
          A NATS credentials file (user JWT and nkey seed), as a string
          path. systemd reads it when the unit starts (LoadCredential=) and
          hands it to the dynamic user; it is never copied into the store.
        '';
      };

      user = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "kiosk-01";
        description = ''
          A NATS user of nats-server's `authorization { users }` (the
          permission block `windlass-fleet permissions HOST` prints), with
          passwordFile; the alternative to credentialsFile.
        '';
      };

      passwordFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/etc/windlass/fleetd.password";
        description = ''
          The NATS user's password (the file's first line), as a string
          path read by systemd when the unit starts (LoadCredential=),
          never copied into the store.
        '';
      };

      host = mkOption {
        type = types.nullOr types.str;
        default =
          if config.networking.hostName == "" then null else lib.toLower config.networking.hostName;
        defaultText = lib.literalExpression ''lib.toLower config.networking.hostName (null when it is "")'';
        example = "kiosk-01";
        description = ''
          This host's id in the fleet: 1 to 63 of a-z, 0-9 and `-`,
          starting with a letter or digit. null: the kernel's host name
          when fleetd starts, lower-cased.
        '';
      };

      labels = mkOption {
        type = types.attrsOf types.str;
        default = { };
        example = {
          site = "north";
          role = "kiosk";
        };
        description = "Labels of this host, which a rollout's waves select hosts by.";
      };

      heartbeatInterval = mkOption {
        type = types.ints.positive;
        default = 30;
        description = ''
          Seconds between heartbeats. A host not heard from in three
          intervals counts as unavailable: when this is not 30, give the
          rollouts the same `policy.heartbeat_interval` (and
          `windlass-fleet hosts --heartbeat-interval`).
        '';
      };

      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Further arguments of windlass-fleetd.";
      };
    };

    coordinator = {
      enable = lib.mkEnableOption ''
        windlass-coordinator, which drives the fleet's rollouts wave by
        wave. Run it on one or more machines that reach the NATS server;
        a lease lets one act at a time. It needs no windlassd'';

      package = mkOption {
        type = types.package;
        default = cfg.package;
        defaultText = lib.literalExpression "config.services.windlass.package";
        description = "The package providing `bin/windlass-coordinator`.";
      };

      natsUrl = mkOption {
        type = types.str;
        default = "nats://127.0.0.1:4222";
        example = "nats://nats.example:4222";
        description = ''
          The NATS server. It is written into the unit, so it must not
          carry a token or a password: give credentialsFile.
        '';
      };

      credentialsFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/etc/windlass/coordinator.creds";
        description = ''
          A NATS credentials file for the coordinator's user, as a string
          path read by systemd when the unit starts (LoadCredential=),
          never copied into the store.
        '';
      };

      leaseTtl = mkOption {
        type = types.str;
        default = "10s";
        example = "30s";
        description = ''
          The lease TTL (`10s`, `1m`, `1h` or seconds): how long a stopped
          coordinator holds the fleet before another takes over. It must be
          the lease bucket's, as created by `windlass-fleet init
          --lease-ttl`.
        '';
      };

      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "--holder"
          "ops-1"
        ];
        description = "Further arguments of windlass-coordinator.";
      };
    };
  };

  config = {
    assertions = lib.mkMerge [
      (fromFleet "assertions")
      (lib.mkIf fleet.enable (
        [
          {
            # fleetd only asks the local windlassd to act, and joins the
            # group (services.windlass.group) its bus policy lets call it:
            # enabling the agent behind the operator's back would be a
            # surprise, so the combination is refused instead.
            assertion = cfg.enable;
            message = "services.windlass.fleet.enable needs services.windlass.enable: windlass-fleetd has the local windlassd carry out the fleet's orders";
          }
          {
            assertion = fleet.host == null || builtins.match "[a-z0-9][a-z0-9-]{0,62}" fleet.host != null;
            message = "services.windlass.fleet.host ${builtins.toJSON fleet.host}: a fleet host id is 1 to 63 of a-z, 0-9 and `-`, starting with a letter or digit (set it when networking.hostName is not one)";
          }
          {
            assertion = !(fleet.credentialsFile != null && fleet.user != null);
            message = "services.windlass.fleet: give credentialsFile or user and passwordFile, not both";
          }
          {
            assertion = (fleet.user == null) == (fleet.passwordFile == null);
            message = "services.windlass.fleet: user and passwordFile go together";
          }
          (secretFileAssertion "services.windlass.fleet.credentialsFile" fleet.credentialsFile)
          (secretFileAssertion "services.windlass.fleet.passwordFile" fleet.passwordFile)
          (urlAssertion "services.windlass.fleet.natsUrl" "credentialsFile or user and passwordFile"
            fleet.natsUrl
          )
        ]
        ++ map (k: {
          assertion = builtins.match "[^=]+" k != null;
          message = "services.windlass.fleet.labels: the key ${builtins.toJSON k} must be non-empty and hold no `=`";
        }) (builtins.attrNames fleet.labels)
      ))
      (lib.mkIf coordinator.enable [
        {
          assertion = builtins.match "0*[1-9][0-9]*[smh]?" coordinator.leaseTtl != null;
          message = "services.windlass.coordinator.leaseTtl ${builtins.toJSON coordinator.leaseTtl}: expected a duration such as 10s, 1m or 10 (seconds), not zero";
        }
        (secretFileAssertion "services.windlass.coordinator.credentialsFile" coordinator.credentialsFile)
        (urlAssertion "services.windlass.coordinator.natsUrl" "credentialsFile" coordinator.natsUrl)
      ])
    ];
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
    users = lib.mkMerge [
      (lib.mkIf cfg.enable { groups.${cfg.group} = { }; })
      # fleetd's user, as fleet/systemd/windlass-fleet.sysusers makes it:
      # static, since dbus-daemon resolves callers through NSS and a
      # DynamicUser= resolves only with nss-systemd.
      (lib.mkIf fleet.enable {
        users.windlass-fleet = {
          isSystemUser = true;
          group = "windlass-fleet";
          extraGroups = [ cfg.group ];
          description = "windlass fleet member";
        };
        groups.windlass-fleet = { };
      })
    ];

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
          }
          // sandbox;
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
      # fleet/systemd/windlass-fleetd.service, its settings as arguments.
      (lib.mkIf fleet.enable {
        services.windlass-fleetd = {
          description = "windlass fleet member (orders and heartbeats over NATS, carried out by windlassd)";
          documentation = [ "https://example.invalid/windlass/docs/fleet.md" ];
          wantedBy = [ "multi-user.target" ];
          wants = [
            "network-online.target"
            "windlassd.service"
          ];
          after = [
            "network-online.target"
            "windlassd.service"
          ];
          serviceConfig = fleetSandbox // {
            ExecStart = execLine fleetdArgs;
            # A D-Bus client of windlassd in the group its policy lets
            # call the mutating methods.
            User = "windlass-fleet";
            Group = "windlass-fleet";
            SupplementaryGroups = [ cfg.group ];
            StateDirectory = "windlass-fleet";
            StateDirectoryMode = "0700";
            # A heartbeat every interval and an order now and then.
            MemoryMax = "128M";
            LoadCredential =
              lib.optional (fleet.credentialsFile != null) ("nats.creds:" + toString fleet.credentialsFile)
              ++ lib.optional (fleet.passwordFile != null) ("nats.password:" + toString fleet.passwordFile);
          };
        };
      })
      # fleet/systemd/windlass-coordinator.service.
      (lib.mkIf coordinator.enable {
        services.windlass-coordinator = {
          description = "windlass fleet coordinator (rolls releases out wave by wave)";
          documentation = [ "https://example.invalid/windlass/docs/fleet.md" ];
          wantedBy = [ "multi-user.target" ];
          wants = [ "network-online.target" ];
          after = [ "network-online.target" ];
          serviceConfig = fleetSandbox // {
            DynamicUser = true;
            ExecStart = execLine coordinatorArgs;
            MemoryMax = "256M";
            LoadCredential = lib.optional (
              coordinator.credentialsFile != null
            ) ("nats.creds:" + toString coordinator.credentialsFile);
          };
        };
      })
    ];
  };
}
