# Stand-in packages for the test evaluations (there is no nixpkgs here). A
# package is its store path (`outPath`, so it interpolates and prints as a
# path) and the files it holds (`files`, relative to that path): all that
# nixpkgs-model.nix needs to link units, generators and tmpfiles.d the way
# a NixOS build does.
{
  linkFarm = name: entries: {
    outPath = "/nix/store/stub-${name}";
    inherit name entries;
    files = map (e: e.name) entries;
  };
  writeText = name: text: {
    outPath = "/nix/store/stub-${name}";
    inherit name text;
    files = [ ];
  };
  # Never interpolated by the modules: kept a plain set so tests see it.
  runCommand = name: env: script: { inherit name env script; };

  # nixpkgs' podman, as far as a NixOS system build looks into it. The
  # package runs `make install.bin install.systemd` (nixpkgs
  # pkgs/by-name/po/podman/package.nix, per ../shared/oracles/nixpkgs/SOURCES.md),
  # which installs both Quadlet generators (links to libexec/podman/quadlet)
  # and, from Podman's Makefile `install.systemd` (containers/podman), the
  # same units for the system and the user manager, plus its tmpfiles.d.
  podman =
    let
      units = [
        "podman.service"
        "podman.socket"
        "podman-auto-update.service"
        "podman-auto-update.timer"
        "podman-restart.service"
        "podman-kube@.service"
        "podman-clean-transient.service"
      ];
    in
    {
      outPath = "/nix/store/stub-podman";
      name = "podman";
      version = "5.4.2";
      files = [
        "bin/podman"
        "libexec/podman/quadlet"
        "lib/systemd/system-generators/podman-system-generator"
        "lib/systemd/user-generators/podman-user-generator"
        "lib/tmpfiles.d/podman.conf"
        "lib/systemd/user/podman-user-wait-network-online.service"
      ]
      ++ map (u: "lib/systemd/system/${u}") units
      ++ map (u: "lib/systemd/user/${u}") units;
    };
}
