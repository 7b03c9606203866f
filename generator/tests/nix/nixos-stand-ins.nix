# The options of the NixOS modules that are not among the real nixpkgs
# files in ../shared/oracles/nixpkgs (see its SOURCES.md), for
# eval-nixos.nix: each declared with the type its nixpkgs module gives it
# (no freeform catch-all: an option not declared here or by a real module
# fails the evaluation, as a misspelt option fails `nixos-rebuild`). Only
# the options the real modules and windlass's modules read or set are
# declared.
#
# systemd: nixos/modules/system/boot/systemd.nix and systemd/user.nix are
# not in the oracles; their option types are the real ones
# (nixos/lib/systemd-types.nix, systemd-unit-options.nix, systemd-lib.nix
# from the oracles, as `utils.systemdUtils`), and what this module does
# with them is written to behave as systemd.nix does (read in
# NuschtOS/nuschtpkgs@bcd11b0f, the fork nixpkgs-model.nix cites; no code
# taken from it): its warnings about services, units
# from services/timers/... with
# systemd-lib.nix's serviceToUnit/timerToUnit, /etc/systemd/system built by
# systemd-lib.nix's generateUnits, and /etc/systemd/system-generators and
# user-generators built by the `hooks` runCommand (which fails on a
# generator name linked twice). systemd's own upstream units are left out
# of generateUnits (nixpkgs-model.nix models them); its .wants directories
# are there (empty).
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib) mkOption types;
  inherit (utils) systemdUtils;
  inherit (systemdUtils.lib)
    generateUnits
    serviceToUnit
    timerToUnit
    socketToUnit
    pathToUnit
    sliceToUnit
    targetToUnit
    ;
  cfg = config.systemd;
  unitsOf = kind: mkOption {
    default = { };
    type = systemdUtils.types.${kind};
  };
  # Builds /etc/systemd/<dir> as systemd.nix's `hooks` does (written here
  # to its behaviour, not taken from it): under stdenv's `set -e` and
  # `nullglob`, every file of each package's lib/systemd/<dir> is linked
  # in package order, then each configured name; `ln -s` without `-f`, so
  # a name linked twice fails the build with "File exists".
  hooks =
    dir: named:
    let
      linkNamed = lib.concatStrings (
        lib.mapAttrsToList (name: target: "ln -s ${target} $out/${name}\n") named
      );
    in
    pkgs.runCommand dir
      {
        preferLocalBuild = true;
        packages = cfg.packages;
      }
      ''
        set -e
        mkdir -p $out
        for pkg in $packages; do
          for file in $pkg/lib/systemd/${dir}/*; do ln -s $file $out/; done
        done
        ${linkNamed}
      '';
  withName = cfgToUnit: c: lib.nameValuePair c.name (cfgToUnit c);
in
{
  options = {
    # nixos/modules/misc/meta.nix
    meta.maintainers = mkOption {
      type = types.listOf types.raw;
      internal = true;
      default = [ ];
    };
    # nixos/modules/misc/version.nix
    system.stateVersion = mkOption {
      type = types.str;
      default = "25.11";
    };
    # nixos/modules/system/activation/top-level.nix
    system.checks = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    # nixos/modules/system/build.nix (freeform in nixpkgs too)
    system.build = mkOption {
      default = { };
      type = types.submoduleWith {
        modules = [ { freeformType = with types; lazyAttrsOf (uniq unspecified); } ];
      };
    };
    # nixos/modules/config/networking.nix (envVars: internal, computed from
    # the proxy settings; {} without a proxy)
    networking.proxy.envVars = mkOption {
      type = types.attrs;
      internal = true;
      default = { };
    };
    # nixos/modules/tasks/network-interfaces.nix
    networking.hostName = mkOption {
      default = "nixos";
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
    };
    # nixos/modules/config/system-path.nix
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    # nixos/modules/tasks/filesystems.nix, as the podman module of the
    # oracles (2023) reads it (a list then).
    boot.supportedFilesystems = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    # nixos/modules/virtualisation/containers.nix
    virtualisation.containers = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      containersConf.settings = mkOption {
        type = (pkgs.formats.toml { }).type;
        default = { };
      };
    };
    # nixos/modules/virtualisation/docker.nix
    virtualisation.docker.enable = mkOption {
      type = types.bool;
      default = false;
    };
    # nixos/modules/services/system/dbus.nix
    services.dbus.packages = mkOption {
      type = types.listOf types.path;
      default = [ ];
    };
    # nixos/modules/config/nix.nix
    nix.package = mkOption {
      type = types.package;
      default = pkgs.nix;
    };
    # nixos/modules/config/users-groups.nix: the options of a user and a
    # group that windlass's and nixpkgs' modules here set or read.
    users.users = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              name = mkOption {
                type = types.passwdEntry types.str;
                default = name;
              };
              description = mkOption {
                type = types.passwdEntry types.str;
                default = "";
              };
              uid = mkOption {
                type = with types; nullOr int;
                default = null;
              };
              isSystemUser = mkOption {
                type = types.bool;
                default = false;
              };
              isNormalUser = mkOption {
                type = types.bool;
                default = false;
              };
              group = mkOption {
                type = types.str;
                default = "";
              };
              extraGroups = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              home = mkOption {
                type = types.passwdEntry types.path;
                default = "/var/empty";
              };
              linger = mkOption {
                type = types.nullOr types.bool;
                default = false;
              };
            };
          }
        )
      );
    };
    users.groups = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule (
          { name, ... }:
          {
            options = {
              name = mkOption {
                type = types.passwdEntry types.str;
                default = name;
              };
              gid = mkOption {
                type = with types; nullOr int;
                default = null;
              };
              members = mkOption {
                type = with types; listOf (passwdEntry str);
                default = [ ];
              };
            };
          }
        )
      );
    };

    # nixos/modules/system/boot/systemd.nix
    systemd = {
      package = mkOption {
        type = types.package;
        default = pkgs.systemd;
      };
      units = mkOption {
        default = { };
        type = systemdUtils.types.units;
      };
      packages = mkOption {
        default = [ ];
        type = types.listOf types.package;
      };
      services = unitsOf "services";
      timers = unitsOf "timers";
      sockets = unitsOf "sockets";
      paths = unitsOf "paths";
      slices = unitsOf "slices";
      targets = unitsOf "targets";
      generators = mkOption {
        type = types.attrsOf types.path;
        default = { };
      };
      defaultUnit = mkOption {
        default = "multi-user.target";
        type = types.str;
      };
      ctrlAltDelUnit = mkOption {
        default = "reboot.target";
        type = types.str;
      };
      globalEnvironment = mkOption {
        type =
          with types;
          attrsOf (
            nullOr (oneOf [
              str
              path
              package
            ])
          );
        default = { };
      };
      enableStrictShellChecks = mkOption {
        type = types.bool;
        default = false;
      };
      # systemd/user.nix
      user = {
        units = mkOption {
          default = { };
          type = systemdUtils.types.units;
        };
        services = unitsOf "services";
        timers = unitsOf "timers";
        sockets = unitsOf "sockets";
        generators = mkOption {
          type = types.attrsOf types.path;
          default = { };
        };
      };
      # systemd/tmpfiles.nix
      tmpfiles = {
        rules = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        packages = mkOption {
          type = types.listOf types.package;
          default = [ ];
        };
      };
    };
  };

  config = {
    # systemd.nix's warnings about services.
    warnings =
      let
        netOnline =
          kind: defs:
          lib.concatLists (
            lib.mapAttrsToList (
              name: def:
              lib.optional (
                lib.elem "network-online.target" def.after
                && !(lib.elem "network-online.target" (def.wants ++ def.requires ++ def.bindsTo))
              ) "${name}.${kind} is ordered after 'network-online.target' but doesn't depend on it"
            ) defs
          );
      in
      lib.concatLists (
        lib.mapAttrsToList (
          name: service:
          let
            type = service.serviceConfig.Type or "";
            restart = service.serviceConfig.Restart or "no";
          in
          lib.optional (
            type == "oneshot" && (restart == "always" || restart == "on-success")
          ) "Service '${name}.service' with 'Type=oneshot' cannot have 'Restart=always' or 'Restart=on-success'"
          ++ lib.optional (builtins.hasAttr "StartLimitInterval" service.serviceConfig) "Service '${name}.service' uses the attribute 'StartLimitInterval' in the Service section, which is deprecated."
        ) cfg.services
      )
      ++ netOnline "service" cfg.services
      ++ netOnline "timer" cfg.timers
      ++ netOnline "socket" cfg.sockets
      ++ netOnline "target" cfg.targets;
    systemd.units =
      lib.mapAttrs' (_: withName pathToUnit) cfg.paths
      // lib.mapAttrs' (_: withName serviceToUnit) cfg.services
      // lib.mapAttrs' (_: withName sliceToUnit) cfg.slices
      // lib.mapAttrs' (_: withName socketToUnit) cfg.sockets
      // lib.mapAttrs' (_: withName targetToUnit) cfg.targets
      // lib.mapAttrs' (_: withName timerToUnit) cfg.timers;
    systemd.timers = lib.mapAttrs (name: service: {
      wantedBy = [ "timers.target" ];
      timerConfig.OnCalendar = service.startAt;
    }) (lib.filterAttrs (name: service: service.enable && service.startAt != [ ]) cfg.services);
    environment.etc = {
      "systemd/system".source = generateUnits {
        type = "system";
        units = cfg.units;
        upstreamUnits = [ ];
        upstreamWants = pkgs.upstreamSystemWants;
      };
      "systemd/system-generators".source = hooks "system-generators" cfg.generators;
      "systemd/user-generators".source = hooks "user-generators" cfg.user.generators;
    };
  };
}
