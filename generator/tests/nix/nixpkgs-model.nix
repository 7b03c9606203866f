# What nixpkgs' own NixOS modules add to a system that imports windlass's
# modules, and the checks a NixOS build makes while it assembles them, for
# every place where the two could define the same thing:
#
#   * /etc/systemd/system-generators and user-generators
#     (systemd.packages' generators + systemd.generators);
#   * the unit directory /etc/systemd/system (systemd's upstream units,
#     systemd.packages' units, systemd.units/services/timers/...);
#   * /etc (environment.etc);
#   * tmpfiles.d (systemd.tmpfiles.packages, .rules, .settings);
#   * users.users and users.groups.
#
# Each model follows nixpkgs' code; "oracle" files are the copies in
# ../shared/oracles/nixpkgs (see its SOURCES.md), cited by line. Files that
# are not there were read, unchanged, from public nixpkgs trees and are
# cited by repository@commit and the binding that holds the code:
#   NuschtOS = NuschtOS/nuschtpkgs@bcd11b0f4df314a5049125a2a967f22ce48df3b1
#              nixos/modules/system/boot/systemd.nix (a current nixpkgs fork)
#   faukah   = faukah/nixpkgs@3b20077cd82fd1f099e92e2792d73e3176d4869d
#
#   import ./nixpkgs-model.nix { pkgs = import ./fake-pkgs.nix { inherit lib; }; } { inherit ours config; }
#
# `ours` is a list of { source = "nixos/fleet.nix"; config = <resolved>; },
# one per windlass module file (eval-nixos.nix builds it from each file's
# definitions); `config` the system's config (oci-containers, podman). The result is
# { errors = [ "..." ]; systemGenerators; userGenerators; unitFiles; etc; }.
{ pkgs }:
{ ours, config }:
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    elemAt
    filter
    foldl'
    groupBy
    isList
    length
    map
    match
    stringLength
    substring
    ;
  podman = pkgs.podman;
  get = path: set: foldl' (s: k: if builtins.isAttrs s then s.${k} or null else null) set path;
  attrsAt = path: set: let v = get path set; in if v == null then { } else v;
  listAt = path: set: let v = get path set; in if v == null then [ ] else v;
  unique = l: foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ] l;
  uniqueBy = key: l:
    (foldl' (
      acc: x:
      if acc.seen ? ${key x} then acc else { seen = acc.seen // { ${key x} = true; }; out = acc.out ++ [ x ]; }
    ) { seen = { }; out = [ ]; } l).out;
  # Direct children of `dir` among a package's files (a shell glob `dir/*`;
  # stdenv's setup.sh runs with `shopt -s nullglob`, so a package without
  # the directory adds nothing).
  children =
    dir: p:
    let
      pre = dir + "/";
      n = stringLength pre;
    in
    concatMap (
      f:
      let
        rest = substring n (stringLength f) f;
      in
      if substring 0 n f == pre && rest != "" && match ".*/.*" rest == null then [ rest ] else [ ]
    ) (p.files or [ ]);
  pkgName = p: p.name or (baseNameOf p.outPath);

  containers = attrsAt [ "virtualisation" "oci-containers" "containers" ] config;
  # oracle oci-containers.nix:570-577 (default "podman" since 22.05).
  ociBackend =
    let
      b = get [ "virtualisation" "oci-containers" "backend" ] config;
    in
    if b == null then "podman" else b;
  # oracle oci-containers.nix:644-646 turns podman on for its containers.
  podmanEnabled =
    (get [ "virtualisation" "podman" "enable" ] config == true)
    || (containers != { } && ociBackend == "podman");

  # systemd's own units, copied into the unit directory before any package
  # (oracle systemd-lib.nix:379-393); the list is NuschtOS' `upstreamSystemUnits`
  # (the services, sockets, paths and timers it always includes) and
  # tmpfiles' `systemd.additionalUpstreamSystemUnits` (faukah
  # nixos/modules/system/boot/systemd/tmpfiles.nix).
  upstreamSystemUnits = {
    outPath = "/nix/store/stub-systemd";
    name = "systemd (upstream units)";
    files = map (u: "example/systemd/system/${u}") [
      "rescue.service"
      "debug-shell.service"
      "systemd-udevd-control.socket"
      "systemd-udevd-kernel.socket"
      "systemd-udevd.service"
      "systemd-udev-trigger.service"
      "systemd-modules-load.service"
      "kmod-static-nodes.service"
      "modprobe@.service"
      "systemd-fsck@.service"
      "systemd-fsck-root.service"
      "systemd-growfs@.service"
      "systemd-growfs-root.service"
      "systemd-remount-fs.service"
      "systemd-pstore.service"
      "systemd-random-seed.service"
      "systemd-backlight@.service"
      "systemd-rfkill.service"
      "systemd-rfkill.socket"
      "systemd-hibernate.service"
      "systemd-hybrid-sleep.service"
      "systemd-suspend.service"
      "systemd-suspend-then-hibernate.service"
      "systemd-reboot.service"
      "systemd-poweroff.service"
      "systemd-halt.service"
      "systemd-kexec.service"
      "systemd-ask-password-console.path"
      "systemd-ask-password-console.service"
      "systemd-ask-password-wall.path"
      "systemd-ask-password-wall.service"
      "systemd-creds@.service"
      "systemd-creds.socket"
      "systemd-nspawn@.service"
      "systemd-sysctl.service"
      "systemd-machine-id-commit.service"
      "systemd-exit.service"
      "systemd-update-done.service"
      "capsule@.service"
      "systemd-tmpfiles-clean.service"
      "systemd-tmpfiles-clean.timer"
      "systemd-tmpfiles-setup-dev-early.service"
      "systemd-tmpfiles-setup-dev.service"
      "systemd-tmpfiles-setup.service"
    ];
  };

  theirs = [
    {
      # NuschtOS systemd.nix, `environment.etc` of its `config`: whole
      # directories built in the store, and a few files.
      source = "nixpkgs systemd.nix";
      config.environment.etc = {
        "systemd/system".source = "/nix/store/stub-system-units";
        "systemd/system.conf".text = "";
        "systemd/sleep.conf".text = "";
        "systemd/user-generators".source = "/nix/store/stub-user-generators";
        "systemd/system-generators".source = "/nix/store/stub-system-generators";
        "systemd/system-shutdown".source = "/nix/store/stub-system-shutdown";
        "systemd/system-preset/00-nixos.preset".text = "ignore *\n";
        "systemd/user-preset/00-nixos.preset".text = "ignore *\n";
      };
    }
    {
      # faukah nixos/modules/system/boot/systemd/tmpfiles.nix: /etc/tmpfiles.d
      # is a symlinkJoin of every tmpfiles package's lib/tmpfiles.d (a glob
      # entry), systemd's own rule files, and the rules every NixOS has.
      source = "nixpkgs systemd/tmpfiles.nix";
      config.environment.etc = {
        "tmpfiles.d".source = "/nix/store/stub-tmpfiles.d/*";
        "mtab".source = "/proc/mounts";
      };
      config.systemd.tmpfiles.packages = [
        {
          outPath = "/nix/store/stub-systemd-default-tmpfiles";
          name = "systemd-default-tmpfiles";
          files = map (f: "lib/tmpfiles.d/${f}.conf") [
            "home"
            "journal-nocow"
            "portables"
            "static-nodes-permissions"
            "systemd"
            "systemd-nologin"
            "systemd-nspawn"
            "systemd-tmp"
            "tmp"
            "var"
            "x11"
          ];
        }
        {
          outPath = "/nix/store/stub-nixos-tmpfiles.d";
          name = "nixos-tmpfiles.d";
          files = [ "lib/tmpfiles.d/00-nixos.conf" ];
        }
      ];
      config.systemd.tmpfiles.rules = [
        "d  /run/lock                          0755 root root - -"
        "d  /var/db                            0755 root root - -"
        "L  /var/lock                          -    -    -    - ../run/lock"
        "d  /nix/var                           0755 root root - -"
        "L+ /nix/var/nix/gcroots/booted-system 0755 root root - /run/booted-system"
        "R! /etc/group.lock                    -    -    -    - -"
        "R! /etc/passwd.lock                   -    -    -    - -"
        "R! /etc/shadow.lock                   -    -    -    - -"
        "R! /nix/var/nix/gcroots/tmp           -    -    -    - -"
        "R! /nix/var/nix/temproots             -    -    -    - -"
      ];
    }
    {
      # nixos/modules/config/users-groups.nix: the accounts every NixOS has
      # (gids and uids from nixos/modules/misc/ids.nix).
      source = "nixpkgs users-groups.nix";
      config.users = {
        groups = {
          root.gid = 0;
          wheel.gid = 1;
          users.gid = 100;
          nogroup.gid = 65534;
        };
        users = {
          root = {
            uid = 0;
            group = "root";
          };
          nobody = {
            uid = 65534;
            group = "nogroup";
          };
        };
      };
    }
  ]
  ++ (
    if podmanEnabled then
      [
        {
          # oracle virtualisation/podman/default.nix:131-192.
          source = "nixpkgs virtualisation/podman/default.nix";
          config = {
            environment.etc."cni/net.d/87-podman-bridge.conflist".source =
              "/nix/store/stub-87-podman-bridge.conflist"; # :136
            systemd.packages = [ podman ]; # :148
            systemd.services.podman = { }; # :150-152
            systemd.sockets.podman = { }; # :154-155
            systemd.user.services.podman = { }; # :157-159
            systemd.user.sockets.podman = { }; # :161
            systemd.tmpfiles.packages = [
              # :163-172
              {
                outPath = "/nix/store/stub-podman-tmpfiles-nixos";
                name = "podman-tmpfiles-nixos";
                files = [ "lib/tmpfiles.d/podman.conf" ];
              }
            ];
            users.groups.podman = { }; # :179
          };
        }
        {
          # The current module (faukah virtualisation/podman/default.nix) also
          # always defines the prune service, and its timer.
          source = "nixpkgs virtualisation/podman/default.nix (current)";
          config.systemd.services.podman-prune = { };
          config.systemd.timers.podman-prune = { };
        }
        {
          # podman sets virtualisation.containers.enable (oracle podman:139);
          # faukah nixos/modules/virtualisation/containers.nix then writes:
          source = "nixpkgs virtualisation/containers.nix";
          config.environment.etc = {
            "containers/containers.conf".source = "/nix/store/stub-containers.conf";
            "containers/storage.conf".source = "/nix/store/stub-storage.conf";
            "containers/registries.conf".source = "/nix/store/stub-registries.conf";
            "containers/policy.json".source = "/nix/store/stub-policy.json";
          };
        }
      ]
    else
      [ ]
  )
  # oracle oci-containers.nix:587-590: one service per container, named
  # `serviceName` (default "<backend>-<name>", :66-71). A windlass file that
  # declares the container may extend that service (`owner`).
  ++ concatMap (
    s:
    map (
      n:
      let
        c = s.config.virtualisation.oci-containers.containers.${n};
      in
      {
        source = "nixpkgs oci-containers.nix (containers.${n})";
        owner = s.source;
        config.systemd.services.${c.serviceName or "${ociBackend}-${n}"} = { };
      }
    ) (attrNames (attrsAt [ "virtualisation" "oci-containers" "containers" ] s.config))
  ) ours;

  tagged = map (s: s // { ours = true; }) ours ++ map (s: s // { ours = false; }) theirs;
  ourSources = map (s: s.source) ours;
  anyOurs = defs: builtins.any (d: d.ours) defs;
  sourcesOf = defs: concatStringsSep ", " (unique (map (d: d.from) defs));
  # name -> [ def ] for the names given more than once.
  duplicates =
    defs:
    let
      g = groupBy (d: d.name) defs;
    in
    map (n: {
      name = n;
      defs = g.${n};
    }) (filter (n: length g.${n} > 1) (attrNames g));

  # ---- generators -------------------------------------------------------
  # NuschtOS systemd.nix, `hooks` (under `environment.etc` of its `config`):
  # /etc/systemd/<dir> is a runCommand that, with `set -e`, first runs
  # `ln -s $hook $out/` for every `$package/lib/systemd/<dir>/*` of every
  # systemd.packages entry, in list order and without removing repeated
  # packages, then `ln -s TARGET $out/NAME` for every option entry. A name
  # seen twice makes `ln` fail ("File exists"), and the system build with it.
  packagesListed = concatMap (
    s:
    map (p: {
      inherit p;
      inherit (s) source ours;
    }) (listAt [ "systemd" "packages" ] s.config)
  ) tagged;
  hooks =
    dir: option:
    concatMap (
      e:
      map (n: {
        name = n;
        from = "package ${pkgName e.p} (systemd.packages in ${e.source})";
        inherit (e) ours;
      }) (children "lib/systemd/${dir}" e.p)
    ) packagesListed
    ++ concatMap (
      s:
      map (n: {
        name = n;
        from = "${concatStringsSep "." option} in ${s.source}";
        inherit (s) ours;
      }) (attrNames (attrsAt option s.config))
    ) tagged;
  generatorErrors =
    dir: option:
    map (
      d:
      "/etc/systemd/${dir}/${d.name} is linked ${toString (length d.defs)} times (${
        concatStringsSep "; " (map (x: x.from) d.defs)
      }): "
      + "nixpkgs' systemd.nix links each package's lib/systemd/${dir}/* and each ${concatStringsSep "." option} entry with `ln -s` under `set -e`, "
      + "so `ln` fails with \"File exists\" and the system does not build"
    ) (duplicates (hooks dir option));
  systemHooks = hooks "system-generators" [ "systemd" "generators" ];
  userHooks = hooks "user-generators" [ "systemd" "user" "generators" ];

  # ---- units ------------------------------------------------------------
  # oracle systemd-lib.nix `generateUnits`: upstream units first (:379-393),
  # then every *distinct* package's etc/systemd/system/* and
  # lib/systemd/system/* with `ln -s $fn $out/` (:409-428; no -f, so a name
  # already there fails the build); then systemd.units entries with
  # overrideStrategy asDropinIfExists become the unit when nobody provides
  # it and a drop-in `overrides.conf` of the provided unit otherwise
  # (:430-465), and asDropin entries always a drop-in (:467-479).
  distinctPackages = uniqueBy (e: e.p.outPath) packagesListed;
  unitFiles =
    map (n: {
      name = n;
      from = "systemd's upstream units";
      pkg = upstreamSystemUnits.outPath;
      ours = false;
    }) (children "example/systemd/system" upstreamSystemUnits)
    ++ concatMap (
      e:
      map (n: {
        name = n;
        from = "package ${pkgName e.p} (systemd.packages in ${e.source})";
        pkg = e.p.outPath;
        inherit (e) ours;
      }) (
        filter (n: match ".*\\.wants" n == null) (
          children "etc/systemd/system" e.p ++ children "lib/systemd/system" e.p
        )
      )
    ) distinctPackages;
  unitFileErrors = map (
    d:
    "the unit file ${d.name} is provided by ${sourcesOf d.defs}: nixpkgs' systemd-lib.nix generateUnits links each with `ln -s` (no -f), "
    + "so the second fails with \"File exists\" and the system does not build"
  ) (duplicates unitFiles);

  # The unit names a module defines, each with its override strategy
  # (oracle systemd-unit-options.nix:84-100, default asDropinIfExists).
  kinds = {
    units = "";
    services = ".service";
    timers = ".timer";
    sockets = ".socket";
    paths = ".path";
    slices = ".slice";
    targets = ".target";
  };
  unitDefs =
    s:
    concatMap (
      kind:
      let
        defs = attrsAt [ "systemd" kind ] s.config;
      in
      map (n: {
        name = n + kinds.${kind};
        from = s.source;
        strategy = defs.${n}.overrideStrategy or "asDropinIfExists";
        inherit (s) ours;
        owner = s.owner or null;
      }) (attrNames defs)
    ) (attrNames kinds);
  allUnitDefs = concatMap unitDefs tagged;
  # Two modules defining one unit are merged by the module system: its
  # `text` is a str (conflicting definitions fail evaluation) and its
  # options merge field by field (one module's ExecStart lands in the
  # other's service). Allowed only where a windlass file extends the
  # service nixpkgs makes for a container that same file declares.
  unitDefErrors = concatMap (
    d:
    let
      froms = map (x: x.from) d.defs;
      relevant = filter (x: !(x.owner != null && elem x.owner froms)) d.defs;
    in
    if anyOurs d.defs && length (unique (map (x: x.from) relevant)) > 1 then
      [
        "the unit ${d.name} is defined by ${sourcesOf relevant}: the module system merges both definitions into one unit (or fails on their conflicting `text`)"
      ]
    else
      [ ]
  ) (duplicates allUnitDefs);
  ourPackages = map (e: e.p.outPath) (filter (e: e.ours) packagesListed);
  providedBy = n: filter (f: f.name == n) unitFiles;
  dropinErrors = concatMap (
    u:
    let
      foreign = filter (f: !(elem f.pkg ourPackages)) (providedBy u.name);
    in
    if u.ours && u.strategy == "asDropinIfExists" && foreign != [ ] then
      [
        "the unit ${u.name} defined in ${u.from} is also provided by ${sourcesOf foreign}: nixpkgs' systemd-lib.nix generateUnits then makes windlass's definition a drop-in (overrides.conf) of that unit, silently"
      ]
    else
      [ ]
  ) allUnitDefs;

  # ---- /etc -------------------------------------------------------------
  # oracle etc.nix: entries are environment.etc's enabled values (:10),
  # each at `target`, by default its name (:224); `text` is `lines`
  # (:151-155), so two modules' texts for one name are concatenated. The
  # builder `makeEtcEntry` (:21-53) links each target with
  # `mkdir -p $(dirname)` and `ln -s`: a second entry for one target is
  # skipped ("duplicate entry", :39-45, the build goes on without it), and a
  # target below another entry's target is written into that entry's store
  # path (fails) or shadows it (when it comes first).
  etcEntries = concatMap (
    s:
    let
      etc = attrsAt [ "environment" "etc" ] s.config;
    in
    map (k: {
      name = k;
      target = etc.${k}.target or k;
      from = s.source;
      inherit (s) ours;
    }) (filter (k: (etc.${k}.enable or true) != false) (attrNames etc))
  ) tagged;
  etcKeyErrors = map (
    d: "environment.etc.\"${d.name}\" is defined by ${sourcesOf d.defs}: the module system concatenates their `text` (or fails on two `source`s)"
  ) (filter (d: anyOurs d.defs && length (unique (map (x: x.from) d.defs)) > 1) (duplicates etcEntries));
  etcTargetErrors = map (
    d: "/etc/${d.name} is the target of ${sourcesOf d.defs}: nixpkgs' etc.nix keeps the first and skips the others"
  ) (
    filter (d: anyOurs d.defs && length (unique (map (x: x.key) d.defs)) > 1) (
      duplicates (map (e: e // { name = e.target; key = e.name; }) etcEntries)
    )
  );
  isBelow =
    dir: path:
    let
      n = stringLength dir + 1;
    in
    substring 0 n path == dir + "/";
  etcPrefixErrors = concatMap (
    a:
    concatMap (
      b:
      if (a.ours || b.ours) && isBelow a.target b.target then
        [
          "/etc/${b.target} (${b.from}) lies inside /etc/${a.target} (${a.from}), a whole entry of its own: nixpkgs' etc.nix cannot link both"
        ]
      else
        [ ]
    ) etcEntries
  ) etcEntries;

  # ---- tmpfiles.d ------------------------------------------------------
  # faukah tmpfiles.nix: /etc/tmpfiles.d is `symlinkJoin` of every
  # systemd.tmpfiles.packages entry's lib/tmpfiles.d (lndir keeps the first
  # file of a name), `settings.<name>` become lib/tmpfiles.d/<name>.conf,
  # and `rules` go into 00-nixos.conf. Per tmpfiles.d(5), when several lines
  # name one path only one applies; the others are logged as errors.
  tmpfilesFiles = concatMap (
    s:
    concatMap (
      p:
      map (n: {
        name = n;
        from = "package ${pkgName p} (systemd.tmpfiles.packages in ${s.source})";
        inherit (s) ours;
      }) (children "lib/tmpfiles.d" p)
    ) (listAt [ "systemd" "tmpfiles" "packages" ] s.config)
  ) tagged;
  tmpfilesPaths = concatMap (
    s:
    map (r: {
      name = elemAt (filter (x: builtins.isString x && x != "") (builtins.split "[ \t]+" r)) 1;
      from = "systemd.tmpfiles.rules in ${s.source}";
      inherit (s) ours;
    }) (listAt [ "systemd" "tmpfiles" "rules" ] s.config)
    ++ concatMap (
      set:
      map (p: {
        name = p;
        from = "systemd.tmpfiles.settings in ${s.source}";
        inherit (s) ours;
      }) (attrNames set)
    ) (builtins.attrValues (attrsAt [ "systemd" "tmpfiles" "settings" ] s.config))
  ) tagged;
  tmpfilesErrors =
    map (d: "tmpfiles.d/${d.name} comes from ${sourcesOf d.defs}: the tmpfiles.d symlinkJoin keeps only one of them") (
      filter (d: anyOurs d.defs && length (unique (map (x: x.from) d.defs)) > 1) (duplicates tmpfilesFiles)
    )
    ++ map (d: "the tmpfiles path ${d.name} is configured by ${sourcesOf d.defs}: systemd-tmpfiles applies one line per path") (
      filter (d: anyOurs d.defs && length (unique (map (x: x.from) d.defs)) > 1) (duplicates tmpfilesPaths)
    );

  # ---- users and groups ---------------------------------------------------
  # users.users and users.groups are attrsOf submodule: two modules' values
  # for one account merge option by option; a list concatenates, two
  # different scalars (gid, uid, group, ...) fail evaluation.
  accountErrors =
    kind:
    let
      defs = concatMap (
        s:
        let
          set = attrsAt [ "users" kind ] s.config;
        in
        map (n: {
          name = n;
          value = set.${n};
          from = s.source;
          inherit (s) ours;
        }) (attrNames set)
      ) tagged;
    in
    concatMap (
      d:
      concatMap (
        a:
        concatMap (
          b:
          if a.ours && !b.ours then
            map (k: "users.${kind}.${d.name}.${k} is set by both ${a.from} and ${b.from}, to different values") (
              filter (
                k:
                b.value ? ${k} && !(isList a.value.${k} && isList b.value.${k}) && a.value.${k} != b.value.${k}
              ) (attrNames a.value)
            )
          else
            [ ]
        ) d.defs
      ) d.defs
    ) (duplicates defs);

  errors =
    generatorErrors "system-generators" [ "systemd" "generators" ]
    ++ generatorErrors "user-generators" [ "systemd" "user" "generators" ]
    ++ unitFileErrors
    ++ unitDefErrors
    ++ dropinErrors
    ++ etcKeyErrors
    ++ etcTargetErrors
    ++ etcPrefixErrors
    ++ tmpfilesErrors
    ++ accountErrors "users"
    ++ accountErrors "groups";
  byName = defs: builtins.mapAttrs (n: ds: map (d: d.from) ds) (groupBy (d: d.name) defs);
in
{
  inherit errors;
  systemGenerators = byName systemHooks;
  userGenerators = byName userHooks;
  unitFiles = byName unitFiles;
  etc = byName (map (e: e // { name = e.target; }) etcEntries);
}
