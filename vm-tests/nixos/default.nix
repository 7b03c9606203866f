# NixOS VM tests: the scenarios of the Debian harness (vm-tests/debian),
# on NixOS with the generated fleet module and services.windlass. Run by
# `nix flake check` (flake.nix `checks`); each test mirrors the assertions
# of the Debian test of the same name in vm-tests/tests/debian.rs.
#
# A scenario is one file here, `<scenario>.nix`, taking
# `{ pkgs, self, common, backend, ... }` and returning a test for
# `pkgs.testers.runNixOSTest`; list it below with the backends it runs on
# (the agent scenarios run on Quadlet, as on Debian). CI evaluates every
# test with stand-in packages and compiles its Python
# (generator/tests/oracle_nix.rs).
{ pkgs, self }:
let
  common = import ./common.nix { inherit pkgs self; };
  scenarios = {
    generate-run = [
      "quadlet"
      "oci-containers"
    ];
    argv-roundtrip = [
      "quadlet"
      "oci-containers"
    ];
    switch-healthy = [ "quadlet" ];
    switch-unhealthy = [ "quadlet" ];
    agent-killed = [ "quadlet" ];
    manual-confirm = [ "quadlet" ];
    explicit-rollback = [ "quadlet" ];
    unauthorised = [ "quadlet" ];
    reboot-before-commit = [ "quadlet" ];
  };
  test =
    scenario: backend:
    pkgs.testers.runNixOSTest (
      import (./. + "/${scenario}.nix") {
        inherit
          pkgs
          self
          common
          backend
          ;
      }
    );
in
builtins.listToAttrs (
  builtins.concatMap (
    scenario:
    map (backend: {
      name = "vm-${scenario}-${backend}";
      value = test scenario backend;
    }) scenarios.${scenario}
  ) (builtins.attrNames scenarios)
)
