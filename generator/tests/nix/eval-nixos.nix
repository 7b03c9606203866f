# Evaluates windlass's NixOS modules the way `nixos-rebuild` would, with
# nixpkgs' own code: nixpkgs' `lib` (`lib.evalModules`: option types,
# priorities, mkIf/mkMerge, "option does not exist") and nixpkgs' real
# modules from the shared oracles (../shared/oracles/nixpkgs, see its
# SOURCES.md): virtualisation/oci-containers.nix, virtualisation/podman,
# misc/assertions.nix, system/etc/etc.nix, and nixos/lib's systemd-lib,
# systemd-types and systemd-unit-options. What is not there is stood in
# for: packages by fake-pkgs.nix (fake derivations whose files and build
# scripts oracle_nix.rs writes and runs), the options of the other NixOS
# modules by nixos-stand-ins.nix (declared with their real types, no
# freeform catch-all). The two modules whose `imports` name files the
# oracles lack (podman's dnsname.nix and network-socket.nix, etc.nix's
# build.nix) are applied without those imports.
#
# As a NixOS build does, a false assertion fails the evaluation with its
# message; so does a collision of windlass's definitions with nixpkgs'
# (nixpkgs-model.nix, fed with each windlass file's own definitions).
#
#   nix-instantiate --eval --strict --json eval-nixos.nix \
#     --arg nixpkgs /nixpkgs --arg modules '[ /out/nixos/default.nix ]' \
#     [--arg generatedFleet /out/nixos] [--argstr windlassPackage /nix/store/...]
#
# The result: the facts oracle_nix.rs checks (units as nixpkgs writes them,
# the containers, /etc entries, the outPaths of the built /etc, ...). The
# fake derivations forced on the way are listed on stderr (fake-pkgs.nix).
{
  nixpkgs,
  # Module files (or modules) applied beside nixpkgs' modules.
  modules,
  # `source` names for the collision model: the module files' path
  # prefixes, each with its short name ("/out/nixos/" -> "nixos/").
  sources ? { },
  generatedFleet ? null,
  # false: leave collisions to the build (the tests' mutants show that the
  # build scripts fail on them too).
  checkModel ? true,
  windlassPackage ? "/nix/store/00000000000000000000000000000000-windlass",
}:
let
  lib = import (nixpkgs + "/lib");
  nixpkgsLib = lib;
  pkgs = import ./fake-pkgs.nix { inherit lib generatedFleet windlassPackage; };
  withoutImports =
    file:
    {
      config,
      options,
      lib,
      pkgs,
      ...
    }@args:
    removeAttrs (import file args) [ "imports" ]
    // {
      _file = file;
    };
  evaluated = lib.evalModules {
    class = "nixos";
    modules = [
      (nixpkgs + "/nixos/modules/virtualisation/oci-containers.nix")
      (withoutImports (nixpkgs + "/nixos/modules/virtualisation/podman/default.nix"))
      (nixpkgs + "/nixos/modules/misc/assertions.nix")
      (withoutImports (nixpkgs + "/nixos/modules/system/etc/etc.nix"))
      ./nixos-stand-ins.nix
      (
        { config, ... }:
        {
          _file = "eval-nixos.nix";
          # nixos/modules/misc/extra-arguments.nix and nixos/lib/utils.nix.
          _module.args = {
            inherit pkgs;
            utils.systemdUtils = rec {
              lib = import (nixpkgs + "/nixos/lib/systemd-lib.nix") {
                inherit config pkgs;
                lib = nixpkgsLib;
                utils.systemdUtils = systemdUtils;
              };
              unitOptions = import (nixpkgs + "/nixos/lib/systemd-unit-options.nix") {
                lib = nixpkgsLib;
                inherit systemdUtils;
              };
              types = import (nixpkgs + "/nixos/lib/systemd-types.nix") {
                lib = nixpkgsLib;
                inherit systemdUtils pkgs;
              };
              systemdUtils = {
                inherit lib unitOptions types;
              };
            };
          };
        }
      )
    ]
    ++ modules;
  };
  config = evaluated.config;
  options = evaluated.options;
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);

  # ---- the collision model, fed with each windlass file's definitions --
  prefixes = builtins.attrNames sources;
  sourceOf =
    file:
    let
      hits = builtins.filter (p: lib.hasPrefix p (toString file)) prefixes;
    in
    if hits == [ ] then
      null
    else
      let
        p = builtins.head hits;
      in
      sources.${p} + lib.removePrefix p (toString file);
  modelPaths = [
    [ "systemd" "packages" ]
    [ "systemd" "generators" ]
    [ "systemd" "user" "generators" ]
    [ "systemd" "units" ]
    [ "systemd" "services" ]
    [ "systemd" "timers" ]
    [ "systemd" "sockets" ]
    [ "systemd" "paths" ]
    [ "systemd" "slices" ]
    [ "systemd" "targets" ]
    [ "systemd" "tmpfiles" "packages" ]
    [ "systemd" "tmpfiles" "rules" ]
    [ "environment" "etc" ]
    [ "users" "users" ]
    [ "users" "groups" ]
    [ "virtualisation" "oci-containers" "containers" ]
  ];
  defs = lib.concatMap (
    path:
    map (d: {
      inherit path;
      source = sourceOf d.file;
      inherit (d) value;
    }) (lib.attrByPath path { definitionsWithLocations = [ ]; } options).definitionsWithLocations
  ) modelPaths;
  ourDefs = builtins.filter (d: d.source != null) defs;
  # A value as the model reads it: the module system's markers resolved
  # where the model looks (names, overrideStrategy, target, enable, ...).
  plain =
    v:
    if builtins.isAttrs v && (v._type or "") == "if" then
      (if v.condition then plain v.content else null)
    else if builtins.isAttrs v && (v._type or "") == "override" then
      plain v.content
    else if builtins.isAttrs v && (v._type or "") == "merge" then
      builtins.foldl' lib.recursiveUpdate { } (map plain v.contents)
    else if builtins.isAttrs v && !(v ? outPath) then
      lib.filterAttrs (_: x: x != null) (builtins.mapAttrs (_: plain) v)
    else
      v;
  ours = map (
    source:
    let
      mine = builtins.filter (d: d.source == source) ourDefs;
    in
    {
      inherit source;
      config = builtins.foldl' (
        acc: d:
        lib.recursiveUpdateUntil (
          path: l: r:
          !(builtins.isAttrs l && builtins.isAttrs r) || l ? outPath
        ) acc (lib.setAttrByPath d.path (plain d.value))
      ) { } mine;
    }
  ) (lib.unique (map (d: d.source) ourDefs));
  modelPkgs = pkgs;
  model = import ./nixpkgs-model.nix { pkgs = modelPkgs; } {
    inherit ours;
    config = {
      virtualisation = {
        oci-containers = {
          inherit (config.virtualisation.oci-containers) backend containers;
        };
        podman.enable = config.virtualisation.podman.enable;
      };
    };
  };

  units = builtins.mapAttrs (n: u: {
    inherit (u)
      text
      overrideStrategy
      enable
      wantedBy
      ;
  }) config.systemd.units;
  facts = {
    inherit units failed;
    services = builtins.mapAttrs (n: s: {
      inherit (s)
        serviceConfig
        environment
        description
        documentation
        wants
        after
        requires
        wantedBy
        restartIfChanged
        stopIfChanged
        ;
    }) config.systemd.services;
    timers = builtins.mapAttrs (n: t: { inherit (t) timerConfig; }) config.systemd.timers;
    containers = config.virtualisation.oci-containers.containers;
    backend = config.virtualisation.oci-containers.backend;
    podman = {
      inherit (config.virtualisation.podman) enable;
      package = "${config.virtualisation.podman.package}";
    };
    etc = builtins.mapAttrs (n: e: {
      inherit (e) target mode enable;
      text = e.text;
      source = "${e.source}";
    }) config.environment.etc;
    etcDrv = "${config.system.build.etc}";
    packages = map toString config.systemd.packages;
    generators = config.systemd.generators;
    checks = map toString config.system.checks;
    users = builtins.mapAttrs (n: u: { inherit (u) group extraGroups isSystemUser; }) config.users.users;
    groups = builtins.attrNames config.users.groups;
    dbusPackages = map (p: {
      path = "${p}";
      text = p.text or null;
    }) config.services.dbus.packages;
    warnings = config.warnings;
    windlass = {
      apps = config.windlass.apps;
      quadletUnits = config.windlass.quadletUnits;
    }
    // lib.optionalAttrs (options ? services.windlass) {
      inherit (config.services.windlass) fleet coordinator;
    };
    model = removeAttrs model [ "errors" ];
  };
in
# nixpkgs' nixos/modules/system/activation/top-level.nix words it so.
if failed != [ ] then
  throw "\nFailed assertions:\n${builtins.concatStringsSep "\n" (map (m: "- ${m}") failed)}"
else if checkModel && model.errors != [ ] then
  throw "windlass and nixpkgs collide:\n  ${builtins.concatStringsSep "\n  " model.errors}"
else
  facts
