# Evaluates modules/nixos (services.windlass) with stub-lib.nix and stub
# packages, for given settings, checks it against what nixpkgs' own modules
# add to the same system (nixpkgs-model.nix, as eval-fleet.nix does), and
# returns its resolved `config`.
#   nix-instantiate --eval --strict --json eval-agent-module.nix \
#     --arg module /repo/modules/nixos/default.nix [--arg generated /gen]
# With `generated`, services.windlass.apps is set and the stub runCommand
# "builds" the fleet module found at that path (a generated OUT/nixos).
# `fleet` and `coordinator` are settings of services.windlass.fleet and
# .coordinator, laid over the defaults the module declares. As in a NixOS
# build, a false assertion fails the evaluation with its message.
{
  module,
  generated ? null,
  agent ? true,
  group ? "ops",
  sweep ? true,
  driftScan ? true,
  backend ? "oci-containers",
  fleet ? { },
  coordinator ? { },
  hostName ? "machine",
}:
let
  lib = import ./stub-lib.nix;
  # The module's own option declarations (the stub mkOption keeps them as
  # given): the defaults come from there, not from this file.
  declared = (import module { inherit config lib pkgs; }).options.services.windlass;
  defaults = builtins.mapAttrs (n: o: o.default);
  cfg = {
    enable = agent;
    package = "/nix/store/stub-windlass";
    inherit group;
    stateDirectory = "/var/lib/windlass";
    sweep = {
      enable = sweep;
      schedule = "weekly";
    };
    driftScan.enable = driftScan;
    cutover = {
      targets.fleet-agent = {
        link = "/usr/local/bin/fleet-agent";
        unit = "fleet-agent.service";
        healthHttp = null;
        deadline = 60;
        keep = 3;
        maxBytes = 1048576;
        selfTestTimeout = 30;
        agent = false;
      };
      extraCertificates = [ "/etc/ssl/fleet-ca.pem" ];
    };
    apps = if generated == null then null else "/fleet";
    inherit backend;
    fleet = defaults declared.fleet // fleet;
    coordinator = defaults declared.coordinator // coordinator;
  };
  pkgs = import ./stub-pkgs.nix // {
    runCommand = name: env: script: {
      outPath = toString generated;
      inherit script;
    };
    writeTextDir = path: text: { inherit path text; };
  };
  appNames =
    if generated == null then
      [ ]
    else
      map (f: builtins.substring 0 (builtins.stringLength f - 4) f) (
        builtins.attrNames (builtins.readDir (generated + "/apps"))
      );
  evaluated = (import module { inherit config lib pkgs; }).config;
  resolved = lib.resolve evaluated;
  # Computed apart from the rest, as the module system computes each
  # option on its own, so that reading it does not recurse.
  windlass = lib.resolve evaluated.windlass;
  config = {
    services.windlass = cfg;
    windlass = {
      apps = builtins.listToAttrs (
        map (n: {
          name = n;
          value.enable = true;
        }) appNames
      );
      generation = windlass.generation or { };
      quadletUnits = windlass.quadletUnits or { };
    };
    virtualisation.podman.package = pkgs.podman;
    nix.package = "/nix/store/stub-nix";
    networking.hostName = hostName;
  };
  failedAssertions = map (a: a.message) (
    builtins.filter (a: !a.assertion) (resolved.assertions or [ ])
  );
  model = import ./nixpkgs-model.nix { inherit pkgs; } {
    ours = [
      {
        source = "modules/nixos/default.nix";
        config = resolved;
      }
    ];
    config = resolved;
  };
in
# nixpkgs' nixos/modules/system/activation/top-level.nix words it so.
if failedAssertions != [ ] then
  throw "\nFailed assertions:\n${builtins.concatStringsSep "\n" (map (m: "- ${m}") failedAssertions)}"
else if model.errors == [ ] then
  resolved
else
  throw "windlass and nixpkgs collide:\n  ${builtins.concatStringsSep "\n  " model.errors}"
