# The windlass package: the generator `windlass`, the agent `windlassd` and
# `windlassctl`, the agent's D-Bus policy and systemd units.
{ lib, rustPlatform }:
let
  root = ../.;
in
rustPlatform.buildRustPackage {
  pname = "windlass";
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../generator
      ../agent
      ../templates
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;
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
