# The windlass package: the generator `windlass`, the agent `windlassd` and
# `windlassctl`, the agent's D-Bus policy, and the fleet binaries
# `windlass-fleetd`, `windlass-coordinator` and `windlass-fleet`.
{ lib, rustPlatform }:
let
  root = ../.;
in
rustPlatform.buildRustPackage {
  pname = "windlass";
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;
  src = lib.fileset.toSource {
    inherit root;
    # Cargo reads every workspace member's manifest and declared targets,
    # so all of them are here, though only three packages are built.
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../contract
      ../generator
      ../agent
      ../net
      ../fleet
      ../templates
      ../vm-tests/Cargo.toml
      ../vm-tests/src
      ../fuzz/Cargo.toml
      ../fuzz/src
      ../fuzz/fuzz_targets
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;
  # Not the test harness (vm-tests) nor the fuzz replayers, whose
  # binaries (manifest, compose, ...) would land in bin/.
  cargoBuildFlags = [
    "--package"
    "windlass"
    "--package"
    "windlass-agent"
    "--package"
    "windlass-fleet"
  ];
  # The test suite runs the real consumers (quadlet, systemd, nix, guile)
  # in a Debian rootfs and a real dbus-daemon as root: `tools/test`.
  doCheck = false;
  postInstall = ''
    if [ -f agent/dbus/io.windlass.Agent1.conf ]; then
      install -Dm644 agent/dbus/io.windlass.Agent1.conf $out/share/dbus-1/system.d/io.windlass.Agent1.conf
    fi
  '';
  meta = {
    description = "Declarative containers for NixOS, Guix and systemd hosts: manifests to Quadlet, NixOS and Guix, and an agent that switches generations gated on health";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "windlass";
  };
}
