# NixOS VM tests: the scenarios of the Debian harness (vm-tests/debian),
# on NixOS with the generated fleet module and services.windlass. Run by
# `nix flake check` (flake.nix `checks`); each test mirrors the assertions
# of the Debian test of the same name in vm-tests/tests/debian.rs.
{ pkgs, self }:
let
  common = import ./common.nix { inherit pkgs self; };
  test = file: args: pkgs.testers.runNixOSTest (import file (args // { inherit pkgs self common; }));
in
{
  vm-generate-run-quadlet = test ./generate-run.nix { backend = "quadlet"; };
  vm-generate-run-oci-containers = test ./generate-run.nix { backend = "oci-containers"; };
  vm-argv-roundtrip-quadlet = test ./argv-roundtrip.nix { backend = "quadlet"; };
  vm-argv-roundtrip-oci-containers = test ./argv-roundtrip.nix { backend = "oci-containers"; };
}
