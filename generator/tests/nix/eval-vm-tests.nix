# Evaluates the NixOS VM test definitions of vm-tests/nixos with stub
# packages (no nixpkgs here) and returns, per test, its name and its
# testScript text, so a test can check the scripts compile as Python.
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
    writeTextDir = path: text: stubPkg "dir";
  };
  common = {
    unit = backend: app: if backend == "quadlet" then "${app}.service" else "podman-${app}.service";
    fleet = dir: backend: { };
    loadImage = apps: backend: { };
  };
  self = { };
  one =
    file: backend:
    let
      t = import file {
        inherit
          pkgs
          self
          common
          backend
          ;
      };
    in
    {
      inherit (t) name testScript;
      nodes = builtins.attrNames t.nodes;
    };
in
builtins.concatMap
  (backend: [
    (one (dir + "/generate-run.nix") backend)
    (one (dir + "/argv-roundtrip.nix") backend)
  ])
  [
    "quadlet"
    "oci-containers"
  ]
