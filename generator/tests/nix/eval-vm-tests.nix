# Evaluates vm-tests/nixos/default.nix (the flake's VM checks) with stand-in
# packages (no nixpkgs here): `pkgs.testers.runNixOSTest` returns the test
# unbuilt, so each check's name, nodes and testScript text come back, for a
# test to check the scripts compile as Python and every scenario file is
# wired in.
#   nix-instantiate --eval --strict --json eval-vm-tests.nix --arg dir /repo/vm-tests/nixos
{ dir }:
let
  stubPkg = name: "/nix/store/stub-${name}";
  pkgs = {
    curl = stubPkg "curl";
    systemd = stubPkg "systemd";
    coreutils = stubPkg "coreutils";
    podman = stubPkg "podman";
    busybox = stubPkg "busybox";
    writeShellScript = name: text: stubPkg name;
    writeText = name: text: stubPkg name;
    writeTextDir = path: text: stubPkg "dir";
    runCommand = name: env: script: stubPkg name;
    buildEnv = args: stubPkg args.name;
    dockerTools.buildImage = args: stubPkg "image";
    testers.runNixOSTest = test: test;
  };
  self = {
    lib.fleetModule = args: stubPkg "fleet-module";
    nixosModules.default = { };
  };
  checks = import (dir + "/default.nix") { inherit pkgs self; };
in
map (
  check:
  let
    t = checks.${check};
  in
  {
    inherit check;
    inherit (t) name testScript;
    nodes = builtins.attrNames t.nodes;
  }
) (builtins.attrNames checks)
