# Evaluates a generated `OUT/nixos` fleet module the way the NixOS module
# system would apply it (with stub-lib.nix standing in for nixpkgs' lib and
# stub packages), and returns the merged, resolved `config` of every file.
#   nix-instantiate --eval --strict --json eval-fleet.nix --arg out /path/to/OUT
#     [--arg disabled '[ "app" ]']
{
  out,
  disabled ? [ ],
}:
let
  lib = import ./stub-lib.nix;
  appFiles = builtins.attrNames (builtins.readDir (out + "/nixos/apps"));
  appNames = map (f: builtins.substring 0 (builtins.stringLength f - 4) f) appFiles;
  pkgs = {
    linkFarm = name: entries: {
      outPath = "/nix/store/stub-${name}";
      inherit entries;
    };
    writeText = name: text: {
      outPath = "/nix/store/stub-${name}";
      inherit text;
    };
    # Never interpolated by the modules: kept a plain set so tests see it.
    runCommand = name: env: script: { inherit name env script; };
  };
  # The options the modules read, computed apart from the rest (as the
  # module system computes each option on its own) so nothing recurses.
  windlass = builtins.foldl' lib.merge2 lib.absent (
    map (c: lib.resolve (c.windlass or lib.absent)) configs
  );
  config = {
    windlass = {
      apps = builtins.listToAttrs (
        map (n: {
          name = n;
          value.enable = !(builtins.elem n disabled);
        }) appNames
      );
      generation = windlass.generation or { };
      quadletUnits = windlass.quadletUnits or { };
    };
    virtualisation.podman.package = "/nix/store/stub-podman";
  };
  modules = [ (out + "/nixos/fleet.nix") ] ++ map (f: out + "/nixos/apps/${f}") appFiles;
  configs = map (m: (import m { inherit config lib pkgs; }).config) modules;
  merged = builtins.foldl' lib.merge2 lib.absent (map lib.resolve configs);
in
merged
