# NixOS option trees shaped like nixpkgs 25.05, 25.11 and unstable, for evaluating module.nix offline.
#
# Only the options module.nix reads or sets, with the types and defaults nixpkgs gives them, and the
# renames and removals between releases wired the way nixpkgs wires them (mkRenamedOptionModule,
# mkRemovedOptionModule: reading a removed option throws):
#
#   25.05     systemd.watchdog.{runtimeTime,device}, systemd.extraConfig, boot.initrd.systemd.extraConfig
#   25.11     systemd.settings.Manager (the watchdog options renamed into it, systemd.extraConfig
#             removed), boot.initrd.systemd.settings.Manager (boot.initrd.systemd.extraConfig removed)
#   unstable  25.11 + boot.loader.systemd-boot.bootCounting.{enable,tries}
#
# systemd.services/timers/targets carry the unit options of nixos/lib/systemd-unit-options.nix that
# the renderer needs (tests/unit/test_nix_units.py turns them into unit files and drop-ins the way
# nixos/lib/systemd-lib.nix does). Packages are stand-ins whose store paths the renderer provides.
#
#   nix-instantiate --eval --strict --json nix/tests/shapes.nix -A …   (see tests/unit/test_nix_*.py)
{
  lib ? import ./modlib.nix,
  store ? "/nix/store",
}:

let
  b = builtins;
  t = lib.types;
  opt = type: default: lib.mkOption { inherit type default; };
  strs = opt (t.listOf t.str) [ ];

  # nixpkgs' unitOption: list definitions are concatenated, single values must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        values = map (d: d.value) defs;
      in
      if b.any b.isList values then
        b.concatLists (map (v: if b.isList v then v else [ v ]) values)
      else if b.all (v: v == b.head values) values then
        b.head values
      else
        throw "The option `${b.concatStringsSep "." loc}' has conflicting definitions: ${b.toJSON values}";
  };
  section = opt (t.attrsOf unitOption) { };
  commonUnit = {
    enable = opt t.bool true;
    description = opt t.str "";
    documentation = strs;
    requires = strs;
    wants = strs;
    after = strs;
    before = strs;
    bindsTo = strs;
    partOf = strs;
    conflicts = strs;
    requisite = strs;
    wantedBy = strs;
    requiredBy = strs;
    upheldBy = strs;
    unitConfig = section;
  };
  serviceUnit = t.submodule {
    options = commonUnit // {
      serviceConfig = section;
      environment = opt (t.attrsOf (t.nullOr (t.either t.str t.package))) { };
      path = opt (t.listOf (t.either t.package t.str)) [ ];
      restartIfChanged = opt t.bool true;
      reloadIfChanged = opt t.bool false;
      stopIfChanged = opt t.bool true;
      startAt = opt (t.either t.str (t.listOf t.str)) [ ];
      script = opt t.lines "";
    };
  };
  timerUnit = t.submodule { options = commonUnit // { timerConfig = section; }; };
  targetUnit = t.submodule { options = commonUnit; };
  fileSystem = t.submodule {
    options = {
      neededForBoot = opt t.bool false;
      fsType = opt t.str "auto";
      device = opt (t.nullOr t.str) null;
    };
  };

  base = {
    options = {
      assertions = opt (t.listOf t.unspecified) [ ];
      warnings = opt (t.listOf t.str) [ ];
      meta.maintainers = opt (t.listOf t.raw) [ ];
      meta.doc = opt (t.nullOr t.path) null;
      boot.kernelParams = strs;
      boot.initrd.availableKernelModules = strs;
      boot.initrd.kernelModules = strs;
      boot.initrd.systemd.enable = opt t.bool false;
      boot.initrd.systemd.storePaths = opt (t.listOf t.unspecified) [ ];
      boot.initrd.systemd.services = opt (t.attrsOf serviceUnit) { };
      boot.loader.efi.efiSysMountPoint = opt t.str "/boot";
      boot.loader.systemd-boot.enable = opt t.bool false;
      boot.loader.systemd-boot.extraInstallCommands = opt t.lines "";
      boot.loader.systemd-boot.configurationLimit = opt (t.nullOr t.int) null;
      boot.loader.systemd-boot.xbootldrMountPoint = opt (t.nullOr t.str) null;
      boot.loader.grub.enable = opt t.bool false;
      boot.loader.grub.default = opt (t.either t.int t.str) 0;
      boot.loader.grub.extraInstallCommands = opt t.lines "";
      boot.loader.grub.configurationLimit = opt t.int 100;
      systemd.services = opt (t.attrsOf serviceUnit) { };
      systemd.timers = opt (t.attrsOf timerUnit) { };
      systemd.targets = opt (t.attrsOf targetUnit) { };
      systemd.packages = opt (t.listOf t.package) [ ];
      systemd.tmpfiles.rules = strs;
      environment.systemPackages = opt (t.listOf t.package) [ ];
      environment.etc = opt (t.attrsOf t.anything) { };
      fileSystems = opt (t.attrsOf fileSystem) { };
      networking.hostName = opt t.str "nixos";
      networking.proxy.envVars = opt (t.attrsOf t.str) { };
      nix.envVars = opt (t.attrsOf t.str) { };
      nix.package = opt t.package pkgs.nix;
      system.build = opt (t.attrsOf t.unspecified) { };
      system.autoUpgrade.enable = opt t.bool false;
      services.prometheus.ruleFiles = opt (t.listOf t.path) [ ];
      services.prometheus.exporters.node.enable = opt t.bool false;
      services.prometheus.exporters.node.enabledCollectors = strs;
      services.prometheus.exporters.node.extraFlags = strs;
      services.grafana.provision.dashboards.settings.providers = opt (t.listOf t.anything) [ ];
    };
    config.system.build.nixos-rebuild = pkgs.nixos-rebuild;
  };

  old = {
    options = {
      systemd.watchdog.runtimeTime = opt (t.nullOr t.str) null;
      systemd.watchdog.device = opt (t.nullOr t.path) null;
      systemd.extraConfig = opt t.lines "";
      boot.initrd.systemd.extraConfig = opt t.lines "";
    };
  };
  settingsConversion = [
    { options.systemd.settings.Manager = section; }
    { options.boot.initrd.systemd.settings.Manager = section; }
    (lib.mkRenamedOptionModule
      [ "systemd" "watchdog" "runtimeTime" ]
      [ "systemd" "settings" "Manager" "RuntimeWatchdogSec" ]
    )
    (lib.mkRenamedOptionModule [ "systemd" "watchdog" "device" ] [ "systemd" "settings" "Manager" "WatchdogDevice" ])
    (lib.mkRemovedOptionModule [ "systemd" "extraConfig" ] "Use systemd.settings.Manager instead.")
    (lib.mkRemovedOptionModule [ "boot" "initrd" "systemd" "extraConfig" ] "Use boot.initrd.systemd.settings.Manager instead.")
  ];
  bootCounting.options.boot.loader.systemd-boot.bootCounting = {
    enable = opt t.bool false;
    tries = opt t.int 3;
  };
  releases = {
    "25.05" = [ old ];
    "25.11" = settingsConversion;
    unstable = settingsConversion ++ [ bootCounting ];
  };

  # Stand-ins for packages: derivation-shaped values with store paths the renderer creates.
  drv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "${store}/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  } // extra;
  pkgs = {
    bootguard = drv "bootguard" {
      meta.mainProgram = "bootguard";
      python = drv "python3" { };
    };
    nix = drv "nix" { out = drv "nix" { }; };
    nixos-rebuild = drv "nixos-rebuild" { };
    formats.toml = _: {
      type = t.anything;
      generate = name: value: drv name { passthru.value = value; };
    };
    runCommand = name: _: _: drv name { };
    writeShellApplication = a: drv a.name { meta.mainProgram = a.name; };
    # ./package.nix is bootguard itself; the other callPackage is initrd-python.nix.
    callPackage = f: _: if baseNameOf (toString f) == "package.nix" then pkgs.bootguard else drv "bootguard-initrd-python" { };
    iputils = drv "iputils" { };
    jq = drv "jq" { };
    gawk = drv "gawk" { };
    coreutils = drv "coreutils" { };
    gitMinimal = drv "git" { };
    python3 = drv "python3" { };
  };
  # nixos/lib/utils.nix: each argument JSON-quoted, `%` and `$` doubled for systemd.
  utils.escapeSystemdExecArgs = lib.concatMapStringsSep " " (
    a: b.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (b.toJSON (if b.isString a then a else toString a))
  );

  loaders = {
    systemd-boot.boot.loader.systemd-boot.enable = true;
    grub = {
      boot.loader.grub.enable = true;
      fileSystems."/boot" = {
        fsType = "vfat";
        neededForBoot = true;
      };
    };
  };

  evaluate =
    {
      release,
      loader ? "systemd-boot",
      user,
      module ? ../module.nix,
    }:
    let
      result = lib.evalModules {
        modules = [
          base
          module
          { boot.initrd.systemd.enable = true; }
          loaders.${loader}
          user
        ]
        ++ releases.${release};
        specialArgs = { inherit pkgs utils; };
      };
      c = result.config;
      pick = names: set: lib.filterAttrs (n: _: b.elem n names) set;
      bootguardUnits = set: lib.filterAttrs (n: _: lib.hasPrefix "bootguard" n || n == "boot-complete" || n == "systemd-bless-boot") set;
    in
    {
      check = result.check or true; # nixpkgs' lib checks undeclared definitions itself
      failedAssertions = map (a: a.message) (b.filter (a: !a.assertion) c.assertions);
      warnings = c.warnings;
      services = bootguardUnits c.systemd.services;
      timers = bootguardUnits c.systemd.timers;
      targets = bootguardUnits c.systemd.targets;
      initrdServices = c.boot.initrd.systemd.services;
      packages = c.systemd.packages;
      kernelParams = c.boot.kernelParams;
      sdbootInstall = c.boot.loader.systemd-boot.extraInstallCommands;
      grubDefault = c.boot.loader.grub.default;
      manager =
        if result.options.systemd ? settings then c.systemd.settings.Manager else pick [ "runtimeTime" "device" ] c.systemd.watchdog;

      metaDoc = toString c.meta.doc;
      packageDefault = result.options.services.bootguard.package.defaultText.text or null;
      maintainers = c.meta.maintainers;
      ruleFiles = map toString c.services.prometheus.ruleFiles;
      nodeExporter = c.services.prometheus.exporters.node;
      grafanaProviders = c.services.grafana.provision.dashboards.settings.providers;
      tmpfiles = c.systemd.tmpfiles.rules;
    };
in
{
  inherit evaluate pkgs lib;
  releases = b.attrNames releases;
}
