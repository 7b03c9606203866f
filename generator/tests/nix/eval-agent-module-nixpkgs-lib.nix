# Evaluates modules/nixos (services.windlass) with nixpkgs' own `lib`
# (`lib.evalModules`: the real option types, defaults, mkIf/mkMerge and
# priorities) and nixpkgs' own nixos/modules/misc/assertions.nix, both
# from the shared oracles (../shared/oracles/nixpkgs, see its SOURCES.md),
# for the settings given as a list of modules. The parts of NixOS the
# module writes to (systemd, environment, users, ...) are declared here
# as plain attribute sets, so their values are not checked here: the
# units are read by systemd itself in oracle_nix.rs. As a NixOS build
# does, a false assertion fails the evaluation with its message; the
# result is also checked against nixpkgs-model.nix, as in
# eval-agent-module.nix.
#   nix-instantiate --eval --strict --json eval-agent-module-nixpkgs-lib.nix \
#     --arg lib /nixpkgs/lib \
#     --arg assertions /nixpkgs/nixos/modules/misc/assertions.nix \
#     --arg module /repo/modules/nixos/default.nix \
#     --arg settings '[ { services.windlass.enable = true; } ]' \
#     [--argstr package /nix/store/...-windlass]
{
  lib,
  assertions,
  module,
  settings,
  # Where the default windlass package (pkgs.windlass) is.
  package ? "/nix/store/stub-windlass",
}:
let
  nixpkgsLib = import lib;
  types = nixpkgsLib.types;
  free = nixpkgsLib.mkOption {
    type = types.lazyAttrsOf types.anything;
    default = { };
  };
  pkgs = import ./stub-pkgs.nix // {
    windlass = {
      type = "derivation";
      name = "windlass";
      outPath = package;
    };
    writeTextDir = path: text: { inherit path text; };
  };
  evaluated = nixpkgsLib.evalModules {
    modules = [
      module
      assertions
      {
        options = {
          environment = free;
          system = free;
          virtualisation = free;
          users = free;
          systemd = free;
          services.dbus = free;
          nix.package = nixpkgsLib.mkOption {
            type = types.anything;
            default = "/nix/store/stub-nix";
          };
          networking.hostName = nixpkgsLib.mkOption {
            type = types.str;
            default = "machine";
          };
        };
        config._module.args.pkgs = pkgs;
      }
    ]
    ++ settings;
  };
  config = evaluated.config;
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  ours = {
    inherit (config)
      environment
      systemd
      users
      virtualisation
      ;
    services.dbus = config.services.dbus;
  };
  model = import ./nixpkgs-model.nix { inherit pkgs; } {
    ours = [
      {
        source = "modules/nixos/default.nix";
        config = ours;
      }
    ];
    config = ours;
  };
in
# nixpkgs' nixos/modules/system/activation/top-level.nix words it so.
if failed != [ ] then
  throw "\nFailed assertions:\n${builtins.concatStringsSep "\n" (map (m: "- ${m}") failed)}"
else if model.errors != [ ] then
  throw "windlass and nixpkgs collide:\n  ${builtins.concatStringsSep "\n  " model.errors}"
else
  ours
  // {
    windlass = {
      inherit (config.services.windlass) fleet coordinator;
    };
  }
