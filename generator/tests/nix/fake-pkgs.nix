# Fake nixpkgs packages for evaluating NixOS modules with nixpkgs' real
# module code (eval-nixos.nix): there is no nixpkgs package set here, and
# nothing is built by Nix. Each fake derivation is an attribute set with
# `type = "derivation"` (so `types.package` and `lib.getExe` take it) and
# an `outPath` under /nix/store derived from a hash of what it holds, so
# two fakes with the same path hold the same thing. What it holds is
# either `files` (relative path -> { text; executable; } or { symlink; };
# "" is the output itself) or a `build` (runCommand's script and env).
#
# Every fake derivation that the evaluation forces is announced on stderr
# as one line, `trace: windlass-fake-drv {json}`: oracle_nix.rs writes the
# files and runs the build scripts (in the oracle rootfs, with its fake
# store mounted at /nix/store), so the scripts nixpkgs' modules write
# (a unit's ExecStart, the oci-containers pre-start, /etc and
# /etc/systemd/system as etc.nix and systemd-lib.nix build them) are run
# as they are, not read.
#
# The text of each script package follows nixpkgs' trivial builders
# (pkgs/build-support/trivial-builders/default.nix: writeShellScriptBin,
# writeShellApplication), whose shellcheck/dry-run checks are not run.
{
  lib,
  # Where pkgs.runCommand "windlass-fleet" (modules/nixos: the fleet module
  # generated from services.windlass.apps) already is: a generated OUT/nixos.
  generatedFleet ? null,
  # Where pkgs.windlass is.
  windlassPackage ? "/nix/store/00000000000000000000000000000000-windlass",
}:
let
  hash = s: builtins.substring 0 32 (builtins.hashString "sha256" s);
  mk =
    name: spec: extra:
    let
      outPath = "/nix/store/${hash (builtins.toJSON { inherit name spec; })}-${name}";
      drv = {
        type = "derivation";
        inherit name outPath;
        drvPath = "${outPath}.drv";
        outputName = "out";
        outputs = [ "out" ];
        out = drv;
        meta = { };
        # What nixpkgs-model.nix reads: the package's files.
        files = builtins.attrNames (spec.files or { });
        overrideAttrs = f: mk ((f { inherit name; }).name or name) spec extra;
        override = _: drv;
      }
      // extra;
    in
    builtins.trace "windlass-fake-drv ${
      builtins.toJSON {
        path = outPath;
        spec = spec // {
          inherit name;
        };
      }
    }" drv;
  file = text: { inherit text; };
  exe = text: {
    inherit text;
    executable = true;
  };
  link = target: { symlink = target; };
  runCommand =
    name: env: script:
    if name == "windlass-fleet" && generatedFleet != null then
      {
        type = "derivation";
        inherit name;
        outPath = toString generatedFleet;
      }
    else
      mk name {
        build = {
          inherit script;
          env = builtins.mapAttrs (
            n: v:
            if builtins.isList v then
              toString v
            else if builtins.isBool v then
              (if v then "1" else "")
            else if builtins.isAttrs v && !(v ? outPath) then
              builtins.toJSON v
            else
              toString v
          ) (removeAttrs env [ "passthru" "meta" ]);
        };
      } (env.passthru or { });
  # A directory of the rootfs, as a package.
  hostTool =
    name: entries:
    mk name { files = builtins.mapAttrs (_: link) entries; } { pname = name; };
  bash = hostTool "bash" { "bin/bash" = "/bin/bash"; };
  runtimeShell = "${bash}/bin/bash";
  # nixos/modules/system/boot/systemd.nix `upstreamSystemWants`.
  upstreamSystemWants = [
    "sysinit.target.wants"
    "sockets.target.wants"
    "local-fs.target.wants"
    "multi-user.target.wants"
    "timers.target.wants"
  ];
  # Podman as far as a NixOS build and these tests look into it: the
  # package runs `make install.bin install.systemd` (nixpkgs
  # pkgs/by-name/po/podman/package.nix, ../shared/oracles/nixpkgs/SOURCES.md),
  # which installs both Quadlet generators (links to libexec/podman/quadlet),
  # the same units for the system and the user manager, and its tmpfiles.d.
  # bin/podman records its argv (NUL-separated, one file per call) in
  # $WINDLASS_PODMAN_RECORD; libexec/podman/quadlet is the rootfs' real
  # Podman 5.4 Quadlet.
  podmanUnits = [
    "podman.service"
    "podman.socket"
    "podman-auto-update.service"
    "podman-auto-update.timer"
    "podman-restart.service"
    "podman-kube@.service"
    "podman-clean-transient.service"
  ];
  podman = mk "podman" {
    files = {
      "bin/podman" = exe ''
        #!/bin/sh
        set -e
        d=''${WINDLASS_PODMAN_RECORD:?podman was called outside a recording}
        n=$(ls "$d" | wc -l)
        printf '%s\0' "$@" > "$d/$n"
        # Nothing exists yet: `podman network exists` and the like fail.
        case "''${1:-}:''${2:-}" in
          network:exists | volume:exists | image:exists) exit 1 ;;
        esac
      '';
      "libexec/podman/quadlet" = link "/usr/libexec/podman/quadlet";
      "lib/systemd/system-generators/podman-system-generator" = link "../../../libexec/podman/quadlet";
      "lib/systemd/user-generators/podman-user-generator" = link "../../../libexec/podman/quadlet";
      "lib/tmpfiles.d/podman.conf" = file "D! /run/podman 0700 root root\nd /run/podman/stub 0700 root root\n";
      "lib/systemd/user/podman-user-wait-network-online.service" = file "[Unit]\n";
      "etc/cni/net.d/87-podman-bridge.conflist" = file "{\"plugins\":[]}\n";
    }
    // builtins.listToAttrs (
      map (u: {
        name = "lib/systemd/system/${u}";
        value = file "[Unit]\n";
      }) podmanUnits
      ++ map (u: {
        name = "lib/systemd/user/${u}";
        value = file "[Unit]\n";
      }) podmanUnits
    );
  } {
    pname = "podman";
    version = "5.4.2";
    man = podman;
    meta.mainProgram = "podman";
  };
  # nixpkgs' pkgs.formats.json: its type (pkgs/pkgs-lib/formats.nix).
  jsonFormat = {
    type =
      let
        valueType =
          with lib.types;
          nullOr (oneOf [
            bool
            int
            float
            str
            path
            (attrsOf valueType)
            (listOf valueType)
          ])
          // {
            description = "JSON value";
          };
      in
      valueType;
    generate = name: value: pkgs.writeText name (builtins.toJSON value);
  };
  pkgs = {
    inherit
      upstreamSystemWants
      runCommand
      runtimeShell
      bash
      podman
      ;
    runCommandLocal = runCommand;
    writeText = name: text: mk name { files."" = file text; } { };
    writeTextDir =
      path: text:
      mk (baseNameOf path) { files.${path} = file text; } {
        inherit path text;
      };
    writeShellScriptBin =
      name: text:
      mk name {
        files."bin/${name}" = exe ''
          #!${runtimeShell}
          ${text}
        '';
      } { meta.mainProgram = name; };
    writeShellApplication =
      {
        name,
        text,
        runtimeInputs ? [ ],
        ...
      }:
      mk name {
        files."bin/${name}" = exe (
          ''
            #!${runtimeShell}
            set -o errexit
            set -o nounset
            set -o pipefail
          ''
          + lib.optionalString (runtimeInputs != [ ]) ''

            export PATH="${lib.makeBinPath runtimeInputs}:$PATH"
          ''
          + ''

            ${text}
          ''
        );
      } { meta.mainProgram = name; };
    linkFarm =
      name: entries:
      mk name {
        files = builtins.listToAttrs (
          map (e: {
            inherit (e) name;
            value = link "${e.path}";
          }) entries
        );
      } { };
    formats = {
      json = _: jsonFormat;
      toml = _: jsonFormat;
    };
    coreutils = hostTool "coreutils" { bin = "/usr/bin"; };
    findutils = hostTool "findutils" { bin = "/usr/bin"; };
    gnugrep = hostTool "gnugrep" { bin = "/usr/bin"; };
    gnused = hostTool "gnused" { bin = "/usr/bin"; };
    # The rootfs has no jq; the one filter run with it here (the podman
    # module's 87-podman-bridge.conflist, no extra plugins) leaves the
    # document as it is.
    jq = mk "jq" { files."bin/jq" = exe "#!/bin/sh\ncat\n"; } { };
    # systemd: its binaries are the rootfs' (systemd 257); the upstream
    # units NixOS copies are left out (nixpkgs-model.nix models them), the
    # .wants directories generateUnits copies are there, empty.
    systemd = mk "systemd" {
      files = {
        bin = link "/usr/bin";
      }
      // builtins.listToAttrs (
        map (w: {
          name = "example/systemd/system/${w}";
          value.dir = true;
        }) upstreamSystemWants
      );
    } { };
    nix = hostTool "nix" { bin = "/usr/bin"; };
    buildPackages.xorg.lndir = hostTool "lndir" { "bin/lndir" = "/bin/false"; };
    windlass = {
      type = "derivation";
      name = "windlass";
      outPath = windlassPackage;
      meta.mainProgram = "windlassd";
    };
  };
in
pkgs
