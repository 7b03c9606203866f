{
  description = "windlass: declarative containers for NixOS, Guix and systemd hosts";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      packageFor = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system}.default;
    in
    {
      packages = forAllSystems (pkgs: {
        default = pkgs.callPackage ./nix/package.nix { };
      });

      overlays.default = final: prev: {
        windlass = final.callPackage ./nix/package.nix { };
      };

      # services.windlass, with this flake's package as the default.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./modules/nixos ];
          services.windlass.package = lib.mkDefault (packageFor pkgs);
        };

      lib = {
        # A fleet directory → the path of its generated NixOS module, built
        # while the configuration is evaluated (for users who do not want
        # to commit generated files):
        #   imports = [ (windlass.lib.fleetModule { inherit pkgs; fleet = ./apps; }) ];
        # where `pkgs` is a nixpkgs package set taken outside the module
        # system (e.g. nixpkgs.legacyPackages.x86_64-linux).
        fleetModule =
          {
            pkgs,
            fleet,
            backend ? "oci-containers",
          }:
          let
            out = pkgs.runCommand "windlass-fleet" { nativeBuildInputs = [ (packageFor pkgs) ]; } ''
              windlass generate ${fleet} -o out --target nixos --nixos-backend ${backend}
              cp -r out/nixos $out
            '';
          in
          "${out}";
      };

      checks = forAllSystems (
        pkgs:
        let
          windlass = packageFor pkgs;
        in
        {
          package = windlass;
          # The example fleet validates, generates deterministically (a second
          # run with --check finds nothing to change) for both NixOS
          # backends, and Podman's own Quadlet accepts every unit.
          examples =
            pkgs.runCommand "windlass-examples"
              {
                nativeBuildInputs = [
                  windlass
                  pkgs.podman
                ];
              }
              ''
                windlass validate ${./examples}
                for backend in oci-containers quadlet; do
                  windlass generate ${./examples} -o out-$backend --nixos-backend $backend
                  windlass generate ${./examples} -o out-$backend --nixos-backend $backend --check
                done
                QUADLET_UNIT_DIRS=$PWD/out-quadlet/quadlet ${pkgs.podman}/libexec/podman/quadlet -dryrun > /dev/null
                touch $out
              '';
        }
        # The VM scenarios of vm-tests/ on NixOS (pkgs.testers.runNixOSTest).
        // import ./vm-tests/nixos { inherit pkgs self; }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            cargo-nextest
            podman
            guile
            dbus
          ];
        };
      });
    };
}
