# A small NixOS-style module system, written for bootguard's offline tests.
#
# nixpkgs cannot be had on the machines that run bootguard's tests, so the module is evaluated with
# this instead of nixpkgs' lib. It implements the semantics module.nix relies on, as nixpkgs' manual
# and lib/modules.nix describe them (written anew here, not copied):
#   - `options` and `config` of every module (function or attrset, `imports`, top-level `meta`);
#     modules receive `config`, `options` (declarations with `value`, `isDefined`, `definitions`),
#     `lib` and specialArgs;
#   - definitions with properties: mkIf/mkMerge/mkOverride pushed down into attribute sets without
#     evaluating conditions (so `cfg.role` may select presets of the same option set), priorities
#     (mkOptionDefault 1500, mkDefault 1000, plain 100, mkForce 50; an option default counts as 1500),
#     mkOrder/mkBefore/mkAfter for lists;
#   - types that check and merge: str/bool/int/… (equal definitions only), lines, listOf, attrsOf,
#     nullOr, either, enum, strMatching, submodule (with freeformType), package, anything;
#   - mkRenamedOptionModule (the old name reads the new option, its definitions go to the new one,
#     a warning), mkRemovedOptionModule (reading throws, defining fails an assertion), mkPackageOption;
#   - `check`: definitions of options that do not exist (nixpkgs' "The option `…' does not exist").
# With nixpkgs at hand, nix/tests/shapes.nix can be evaluated with the real lib instead (its `lib`
# argument), which is how this file's behaviour was compared with nixpkgs'.
let
  b = builtins;

  # ------------------------------------------------------------------------------- plain helpers
  id = x: x;
  concatMap = f: l: b.concatLists (map f l);
  optional = c: x: if c then [ x ] else [ ];
  optionals = c: l: if c then l else [ ];
  optionalAttrs = c: a: if c then a else { };
  optionalString = c: s: if c then s else "";
  concatStringsSep = b.concatStringsSep;
  concatMapStringsSep = sep: f: l: concatStringsSep sep (map f l);
  concatMapStrings = f: l: b.concatStringsSep "" (map f l);
  hasPrefix = p: s: b.substring 0 (b.stringLength p) s == p;
  hasSuffix =
    x: s:
    let
      ls = b.stringLength s;
      lx = b.stringLength x;
    in
    ls >= lx && b.substring (ls - lx) lx s == x;
  removePrefix = p: s: if hasPrefix p s then b.substring (b.stringLength p) (-1) s else s;
  hasInfix = x: s: b.match ".*${escapeRegex x}.*" s != null;
  escapeRegex = b.replaceStrings (map (c: c) [ "\\" "[" "]" "{" "}" "(" ")" "." "*" "+" "?" "^" "$" "|" ]) (
    map (c: "\\" + c) [ "\\" "[" "]" "{" "}" "(" ")" "." "*" "+" "?" "^" "$" "|" ]
  );
  mapAttrsToList = f: a: map (n: f n a.${n}) (b.attrNames a);
  filterAttrs = p: a: b.listToAttrs (b.filter (x: p x.name x.value) (mapAttrsToList (name: value: { inherit name value; }) a));
  mapAttrsRecursive =
    f: set:
    let
      go = path: b.mapAttrs (n: v: if b.isAttrs v && !(v ? _type) then go (path ++ [ n ]) v else f (path ++ [ n ]) v);
    in
    go [ ] set;
  zipAttrsWith = f: sets: b.zipAttrsWith f sets;
  setAttrByPath = path: v: if path == [ ] then v else { ${b.head path} = setAttrByPath (b.tail path) v; };
  getAttrFromPath = path: set: b.foldl' (s: n: s.${n}) set path;
  hasAttrByPath =
    path: set: path == [ ] || (b.isAttrs set && set ? ${b.head path} && hasAttrByPath (b.tail path) set.${b.head path});
  showOption = concatStringsSep ".";
  isDerivation = x: b.isAttrs x && (x.type or null) == "derivation";
  getExe = p: "${p}/bin/${p.meta.mainProgram}";
  max = x: y: if x > y then x else y;
  min = x: y: if x < y then x else y;
  toJSON = b.toJSON;
  lists = {
    inherit optional optionals;
  };

  # --------------------------------------------------------------------------------- properties
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkOverride = priority: content: {
    _type = "override";
    inherit priority content;
  };
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;
  mkOrder = priority: content: {
    _type = "order";
    inherit priority content;
  };
  mkBefore = mkOrder 500;
  mkAfter = mkOrder 1500;

  # An attrset of definitions → name → list of definitions, properties pushed down unevaluated.
  pushDown =
    def:
    let
      t = def._type or null;
    in
    if t == "merge" then
      zipAttrsWith (_: b.concatLists) (map pushDown def.contents)
    else if t == "if" then
      b.mapAttrs (_: map (mkIf def.condition)) (pushDown def.content)
    else if t == "override" then
      b.mapAttrs (_: map (mkOverride def.priority)) (pushDown def.content)
    else if b.isAttrs def && t == null then
      b.mapAttrs (_: v: [ v ]) def
    else
      throw "a definition of an attribute set is not one: ${b.typeOf def}";

  # One definition → its values with priority and order (conditions evaluated now).
  discharge =
    prio: order: def:
    let
      t = def._type or null;
    in
    if t == "merge" then
      concatMap (discharge prio order) def.contents
    else if t == "if" then
      (if def.condition then discharge prio order def.content else [ ])
    else if t == "override" then
      discharge def.priority order def.content
    else if t == "order" then
      discharge prio def.priority def.content
    else
      [
        {
          inherit prio order;
          value = def;
        }
      ];

  # The values of the highest-priority definitions, in mkOrder order.
  effective =
    defs:
    let
      all = concatMap (discharge 100 1000) defs;
      top = b.foldl' (m: d: min m d.prio) 9999 all;
      kept = b.filter (d: d.prio == top) all;
    in
    map (d: d.value) (b.sort (x: y: x.order < y.order) kept);

  # --------------------------------------------------------------------------------------- types
  mkOptionType =
    {
      name,
      check ? (_: true),
      merge ? mergeEqual,
      ...
    }@a:
    a
    // {
      _type = "option-type";
      inherit name check merge;
    };
  vals = map (d: d.value);
  wrap = map (value: {
    file = "<unknown-file>";
    inherit value;
  });
  mergeEqual =
    loc: defs:
    let
      values = vals defs;
      first = b.head values;
    in
    if b.all (v: v == first) values then
      first
    else
      throw "The option `${showOption loc}' has conflicting definition values: ${toJSON values}";
  checked =
    type: loc: v:
    if type.check v then v else throw "A definition for option `${showOption loc}' is not of type `${type.name}': ${b.typeOf v}";
  simple = name: check: mkOptionType { inherit name check; };
  isStringLike = x: b.isString x || b.isPath x || (b.isAttrs x && x ? outPath);

  types = rec {
    str = simple "str" b.isString;
    nonEmptyStr = simple "nonEmptyStr" (x: b.isString x && x != "");
    path = simple "path" isStringLike;
    bool = simple "bool" b.isBool;
    int = simple "int" b.isInt;
    float = simple "float" b.isFloat;
    number = simple "number" (x: b.isInt x || b.isFloat x);
    port = ints.between 0 65535;
    ints = {
      between = lo: hi: simple "int between ${toString lo} and ${toString hi}" (x: b.isInt x && x >= lo && x <= hi);
      positive = simple "positive int" (x: b.isInt x && x > 0);
      unsigned = simple "unsigned int" (x: b.isInt x && x >= 0);
    };
    enum = vs: simple "one of ${toJSON vs}" (x: b.elem x vs);
    strMatching = re: simple "string matching ${re}" (x: b.isString x && b.match re x != null);
    package = simple "package" (x: isDerivation x || isStringLike x);
    raw = simple "raw" (_: true);
    unspecified = raw;
    lines = mkOptionType {
      name = "lines";
      check = b.isString;
      merge = _: defs: concatStringsSep "\n" (vals defs);
    };
    listOf =
      elem:
      mkOptionType {
        name = "list of ${elem.name}";
        check = b.isList;
        merge =
          loc: defs:
          let
            all = b.concatLists (vals defs);
          in
          b.genList (i: elem.merge (loc ++ [ "[${toString i}]" ]) (wrap [ (checked elem loc (b.elemAt all i)) ])) (b.length all);
      };
    attrsOf =
      elem:
      mkOptionType {
        name = "attribute set of ${elem.name}";
        check = b.isAttrs;
        merge =
          loc: defs:
          b.mapAttrs (n: ds: elem.merge (loc ++ [ n ]) (wrap (map (checked elem (loc ++ [ n ])) (effective ds)))) (
            zipAttrsWith (_: b.concatLists) (map pushDown (vals defs))
          );
      };
    nullOr =
      elem:
      mkOptionType {
        name = "null or ${elem.name}";
        check = x: x == null || elem.check x;
        merge =
          loc: defs:
          if b.all (v: v == null) (vals defs) then
            null
          else if b.any (v: v == null) (vals defs) then
            throw "The option `${showOption loc}' is defined both null and not null"
          else
            elem.merge loc defs;
      };
    either =
      t1: t2:
      mkOptionType {
        name = "${t1.name} or ${t2.name}";
        check = x: t1.check x || t2.check x;
        merge = loc: defs: if b.all t1.check (vals defs) then t1.merge loc defs else t2.merge loc defs;
      };
    oneOf = ts: b.foldl' either (b.head ts) (b.tail ts);
    anything = mkOptionType {
      name = "anything";
      merge =
        loc: defs:
        let
          values = vals defs;
        in
        if b.all b.isAttrs values && !(b.any isDerivation values) then
          b.mapAttrs (n: ds: anything.merge (loc ++ [ n ]) (wrap (effective ds))) (zipAttrsWith (_: b.concatLists) (map pushDown values))
        else if b.all b.isList values then
          b.concatLists values
        else
          mergeEqual loc defs;
    };
    attrs = attrsOf raw;
    submodule =
      m:
      mkOptionType {
        name = "submodule";
        check = b.isAttrs;
        merge = loc: defs: (evalModules { modules = (if b.isList m then m else [ m ]) ++ vals defs; }).config;
        getSubOptions = (evalModules { modules = if b.isList m then m else [ m ]; }).options;
      };
  };

  # ------------------------------------------------------------------------------------- options
  mkOption = a: a // { _type = "option"; };
  mkEnableOption =
    name:
    mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
    };
  mkPackageOption =
    pkgs: name:
    {
      default ? [ name ],
      pkgsText ? "pkgs",
      extraDescription ? "",
      ...
    }:
    let
      path = if b.isList default then default else [ default ];
    in
    mkOption {
      type = types.package;
      default =
        if hasAttrByPath path pkgs then
          getAttrFromPath path pkgs
        else
          throw "${pkgsText}.${showOption path} cannot be found in ${pkgsText}";
      defaultText = literalExpression "${pkgsText}.${showOption path}";
      description = "The ${name} package to use." + optionalString (extraDescription != "") " ${extraDescription}";
    };
  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };
  isOption = x: b.isAttrs x && (x._type or null) == "option";

  # ------------------------------------------------------------------------------- evalModules
  evalModules =
    {
      modules,
      specialArgs ? { },
    }:
    let
      lib' = lib;
      args = specialArgs // {
        lib = lib';
        inherit config options;
      };
      call =
        m:
        let
          f = if b.isPath m || b.isString m then import m else m;
          fa = b.functionArgs f;
        in
        if b.isFunction f then f (b.mapAttrs (n: _: args.${n} or (throw "module argument `${n}' is missing")) fa // args) else f;
      normalize =
        raw:
        let
          m = call raw;
          structured = m ? options || m ? config;
          cfg0 = if structured then m.config or { } else removeAttrs m [ "imports" "_file" "freeformType" "key" ];
          cfg' = if structured && m ? meta then mkMerge [ cfg0 { meta = m.meta; } ] else cfg0;
        in
        [
          {
            options = m.options or { };
            config = cfg';
            freeformType = m.freeformType or null;
          }
        ]
        ++ concatMap normalize (m.imports or [ ]);
      mods = concatMap normalize modules;
      freeform = b.foldl' (acc: m: if m.freeformType != null then m.freeformType else acc) null mods;

      mergeDecls =
        loc: decls:
        if b.length decls == 1 then
          b.head decls
        else if b.all (d: !isOption d) decls then
          zipAttrsWith (n: mergeDecls (loc ++ [ n ])) decls
        else
          throw "The option `${showOption loc}' is declared more than once";
      declared = mergeDecls [ ] (map (m: m.options) mods);

      evalOption =
        loc: opt: defs:
        let
          all = concatMap (discharge 100 1000) defs;
          top = b.foldl' (m: d: min m d.prio) 9999 all;
          # The default counts as a definition at priority 1500, taken without looking into it
          # (mkPackageOption's default throws when the package is missing).
          values = effective defs ++ optional (opt ? default && top >= 1500) opt.default;
          type = opt.type or types.unspecified;
          merged =
            if values == [ ] then
              throw "The option `${showOption loc}' was accessed but has no value defined. Try setting the option."
            else
              type.merge loc (wrap (map (checked type loc) values));
        in
        opt
        // {
          value = (opt.apply or id) merged;
          isDefined = effective defs != [ ];
          definitions = effective defs;
          inherit loc;
        };

      evalTree =
        loc: decls: defs:
        let
          pushed = zipAttrsWith (_: b.concatLists) (map pushDown defs);
        in
        b.mapAttrs (
          n: d:
          if isOption d then evalOption (loc ++ [ n ]) d (pushed.${n} or [ ]) else evalTree (loc ++ [ n ]) d (pushed.${n} or [ ])
        ) decls;

      defsAll = map (m: m.config) mods;
      options = evalTree [ ] declared defsAll;
      toConfig = t: b.mapAttrs (_: v: if isOption v then v.value else toConfig v) t;
      freeformPart =
        let
          pushed = zipAttrsWith (_: b.concatLists) (map pushDown defsAll);
          extra = removeAttrs pushed (b.attrNames declared);
        in
        if freeform == null then { } else b.mapAttrs (n: defs: freeform.merge [ n ] (wrap (effective defs))) extra;
      config = freeformPart // toConfig options;

      # Definitions of options that do not exist (not checked inside freeform sets).
      unknown =
        loc: decls: defs:
        let
          pushed = zipAttrsWith (_: b.concatLists) (map pushDown defs);
        in
        concatMap (
          n:
          let
            d = decls.${n} or null;
          in
          if d == null then
            [ (showOption (loc ++ [ n ])) ]
          else if isOption d then
            [ ]
          else
            unknown (loc ++ [ n ]) d pushed.${n}
        ) (b.attrNames pushed);
      undeclared = if freeform == null then unknown [ ] declared defsAll else [ ];
    in
    {
      inherit config options;
      check =
        if undeclared == [ ] then true else throw "The option `${b.head undeclared}' does not exist (${toJSON undeclared}).";
    };

  # Renames and removals the way nixpkgs wires them (lib/modules.nix): an option at the old name.
  mkRenamedOptionModule =
    from: to:
    { config, options, ... }:
    let
      fromOpt = getAttrFromPath from options;
    in
    {
      options = setAttrByPath from (mkOption {
        description = "Alias of ${showOption to}.";
        apply = _: b.trace "Obsolete option `${showOption from}' is used. It was renamed to `${showOption to}'." (getAttrFromPath to config);
      });
      config = mkMerge [
        { warnings = optional fromOpt.isDefined "The option `${showOption from}' has been renamed to `${showOption to}'."; }
        (mkIf fromOpt.isDefined (setAttrByPath to (mkMerge fromOpt.definitions)))
      ];
    };
  mkRemovedOptionModule =
    from: hint:
    { options, ... }:
    {
      options = setAttrByPath from (mkOption {
        apply = _: throw "The option `${showOption from}' can no longer be used since it's been removed. ${hint}";
      });
      config.assertions = [
        {
          assertion = !(getAttrFromPath from options).isDefined;
          message = "The option definition `${showOption from}' no longer has any effect; please remove it.\n${hint}";
        }
      ];
    };

  lib = {
    inherit
      id concatMap optional optionals optionalAttrs optionalString concatStringsSep concatMapStringsSep
      concatMapStrings hasPrefix removePrefix mergeEqual hasSuffix hasInfix mapAttrsToList filterAttrs mapAttrsRecursive
      setAttrByPath getAttrFromPath hasAttrByPath isDerivation getExe max min lists mkIf mkMerge mkOverride
      mkOptionDefault mkDefault mkForce mkOrder mkBefore mkAfter mkOptionType types mkOption
      mkEnableOption mkPackageOption literalExpression evalModules mkRenamedOptionModule
      mkRemovedOptionModule isOption
      ;
    inherit (b)
      attrNames attrValues elem filter any all hasAttr head tail length toJSON listToAttrs
      ;
    # Like nixpkgs: words of safe characters stay bare, anything else is single-quoted.
    escapeShellArg =
      s:
      let
        str = toString s;
      in
      if b.match "[[:alnum:],._+:@%/-]+" str != null then str else "'" + b.replaceStrings [ "'" ] [ "'\\''" ] str + "'";
    escapeShellArgs = l: concatStringsSep " " (map lib.escapeShellArg l);
    maintainers = { };
    fileset = { };
  };
in
lib
