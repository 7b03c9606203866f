# A stand-in for the few nixpkgs `lib` functions the generated fleet modules
# use, so tests can evaluate them with plain `nix-instantiate` (there is no
# nixpkgs here). mkIf/mkMerge/mkForce build the same property markers as the
# real module system; `resolve` (not in nixpkgs) turns them into values.
rec {
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkForce = content: {
    _type = "override";
    priority = 50;
    inherit content;
  };

  mkDefault = content: {
    _type = "override";
    priority = 1000;
    inherit content;
  };
  # Option declarations are only described here, never type-checked.
  mkOption = o: o;
  mkEnableOption = description: {
    default = false;
    inherit description;
  };
  mkPackageOption = pkgs: name: o: { default = pkgs.${name} or null; };
  literalExpression = text: text;
  types = {
    str = "str";
    bool = "bool";
    int = "int";
    ints.positive = "ints.positive";
    package = "package";
    path = "path";
    anything = "anything";
    strMatching = re: "strMatching ${re}";
    nullOr = t: t;
    enum = l: l;
    attrsOf = t: t;
    listOf = t: t;
    submodule = m: m;
  };

  optional = c: x: if c then [ x ] else [ ];
  optionals = c: l: if c then l else [ ];
  toLower = builtins.replaceStrings (builtins.genList (
    i: builtins.substring i 1 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  ) 26) (builtins.genList (i: builtins.substring i 1 "abcdefghijklmnopqrstuvwxyz") 26);
  attrValues = builtins.attrValues;
  attrNames = builtins.attrNames;
  mapAttrsToList = f: a: map (n: f n a.${n}) (builtins.attrNames a);
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: a: builtins.listToAttrs (mapAttrsToList f a);
  escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
  escapeShellArgs = l: builtins.concatStringsSep " " (map escapeShellArg l);
  makeBinPath = l: builtins.concatStringsSep ":" (map (p: "${p}/bin") l);

  # Property markers → plain values; a false mkIf becomes `absent`.
  absent = {
    _type = "absent";
  };
  isAbsent = v: builtins.isAttrs v && (v._type or "") == "absent";
  merge2 =
    a: b:
    if isAbsent a then
      b
    else if isAbsent b then
      a
    else if builtins.isAttrs a && builtins.isAttrs b then
      builtins.zipAttrsWith (n: vs: builtins.foldl' merge2 absent vs) [
        a
        b
      ]
    else if builtins.isList a && builtins.isList b then
      a ++ b
    else if a == b then
      a
    else
      throw "conflicting definitions: ${builtins.toJSON a} and ${builtins.toJSON b}";
  resolve =
    v:
    if builtins.isAttrs v && v ? _type then
      if v._type == "if" then
        (if v.condition then resolve v.content else absent)
      else if v._type == "merge" then
        builtins.foldl' merge2 absent (map resolve v.contents)
      else if v._type == "override" then
        resolve v.content
      else
        v
    else if builtins.isAttrs v && !(v ? outPath) then
      let
        r = builtins.mapAttrs (n: resolve) v;
      in
      removeAttrs r (builtins.filter (n: isAbsent r.${n}) (builtins.attrNames r))
    else if builtins.isList v then
      map resolve v
    else
      v;
}
