# Evaluates a generated `OUT/nixos` fleet module the way the NixOS module
# system would apply it (with stub-lib.nix standing in for nixpkgs' lib and
# stub-pkgs.nix for its packages), checks it against what nixpkgs' own
# modules add to the same system (nixpkgs-model.nix: a collision fails the
# evaluation, naming it, as it would fail `nixos-rebuild`), and returns the
# merged, resolved `config` of every file, plus `_nixpkgs`: the generators,
# unit files and /etc entries the system would get, with who provides them.
#   nix-instantiate --eval --strict --json eval-fleet.nix --arg out /path/to/OUT
#     [--arg disabled '[ "app" ]'] [--arg extraModules '[ /path/to/module.nix ]']
{
  out,
  disabled ? [ ],
  # More module files applied with the fleet (tests' mutants).
  extraModules ? [ ],
}:
let
  lib = import ./stub-lib.nix;
  pkgs = import ./stub-pkgs.nix;
  appFiles = builtins.attrNames (builtins.readDir (out + "/nixos/apps"));
  appNames = map (f: builtins.substring 0 (builtins.stringLength f - 4) f) appFiles;
  # The options the modules read, computed apart from the rest (as the
  # module system computes each option on its own) so nothing recurses.
  windlass = builtins.foldl' lib.merge2 lib.absent (
    map (s: lib.resolve (s.config.windlass or lib.absent)) sources
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
    virtualisation.podman.package = pkgs.podman;
  };
  modules = [
    {
      source = "nixos/fleet.nix";
      file = out + "/nixos/fleet.nix";
    }
  ]
  ++ map (f: {
    source = "nixos/apps/${f}";
    file = out + "/nixos/apps/${f}";
  }) appFiles
  ++ map (m: {
    source = "extra module ${baseNameOf m}";
    file = m;
  }) extraModules;
  sources = map (m: {
    inherit (m) source;
    config = (import m.file { inherit config lib pkgs; }).config;
  }) modules;
  resolved = map (s: s // { config = lib.resolve s.config; }) sources;
  merged = builtins.foldl' lib.merge2 lib.absent (map (s: s.config) resolved);
  model = import ./nixpkgs-model.nix { inherit pkgs; } {
    ours = resolved;
    config = merged;
  };
in
if model.errors == [ ] then
  merged
  // {
    _nixpkgs = removeAttrs model [ "errors" ];
  }
else
  throw "windlass and nixpkgs collide:\n  ${builtins.concatStringsSep "\n  " model.errors}"
