# Evaluates module.nix with nixpkgs' module system (lib.evalModules) against stand-ins for the NixOS
# options it sets, for a handful of configurations, and checks what it produces: presets and
# overrides, the command lines of every unit, the watchdog hand-off on old and new nixpkgs, the
# assertions and warnings. Needs only nixpkgs' lib (no packages, no builds):
#
#   nix-instantiate --eval --strict nix/tests/eval.nix --arg lib 'import <nixpkgs/lib>'
#
# prints `"ok"` or stops with the first failed expectation. The flake runs it as checks.<system>.eval.
{ lib }:

let
  t = lib.types;
  opt = type: default: lib.mkOption { inherit type default; };
  any = t.anything;

  # Stand-ins for the packages and helpers the module uses: strings that show what was asked for.
  pkgs = {
    formats.toml = _: {
      type = any;
      generate = _: value: "TOML:" + builtins.toJSON value;
    };
    runCommand = name: _: script: "RUNCOMMAND(${name}):" + script;
    writeShellApplication = a: {
      type = "derivation";
      outPath = "/stage-trial";
      meta.mainProgram = a.name;
    };
    callPackage = _: _: {
      type = "derivation";
      outPath = "/initrd-python";
    };
    iputils = "/iputils";
    jq = "/jq";
    gawk = "/gawk";
    coreutils = "/coreutils";
    gitMinimal = "/git";
    python3 = "/python3";
  };
  utils.escapeSystemdExecArgs = lib.concatMapStringsSep " " builtins.toJSON;
  package = {
    type = "derivation";
    outPath = "/bootguard";
    version = "0";
    meta.mainProgram = "bootguard";
    python = {
      outPath = "/python";
      sitePackages = "lib/python3/site-packages";
      libPrefix = "python3";
    };
  };

  # The NixOS options module.nix defines, with loose types.
  nixos = {
    options = {
      assertions = opt (t.listOf t.unspecified) [ ];
      warnings = opt (t.listOf t.str) [ ];
      boot.kernelParams = opt (t.listOf t.str) [ ];
      boot.initrd.availableKernelModules = opt (t.listOf t.str) [ ];
      boot.initrd.kernelModules = opt (t.listOf t.str) [ ];
      boot.initrd.systemd.enable = opt t.bool false;
      boot.initrd.systemd.storePaths = opt (t.listOf any) [ ];
      boot.initrd.systemd.services = opt (t.attrsOf any) { };
      boot.initrd.systemd.extraConfig = opt t.lines "";
      boot.loader.systemd-boot.enable = opt t.bool false;
      boot.loader.systemd-boot.extraInstallCommands = opt t.lines "";
      boot.loader.systemd-boot.configurationLimit = opt (t.nullOr t.int) null;
      boot.loader.systemd-boot.xbootldrMountPoint = opt (t.nullOr t.str) null;
      boot.loader.efi.efiSysMountPoint = opt t.str "/boot";
      systemd.services = opt (t.attrsOf any) { };
      systemd.timers = opt (t.attrsOf any) { };
      systemd.targets = opt (t.attrsOf any) { };
      systemd.packages = opt (t.listOf any) [ ];
      systemd.tmpfiles.rules = opt (t.listOf t.str) [ ];
      environment.systemPackages = opt (t.listOf any) [ ];
      environment.etc = opt (t.attrsOf any) { };
      fileSystems = opt (t.attrsOf any) { };
      networking.hostName = opt t.str "web1";
      networking.proxy.envVars = opt (t.attrsOf t.str) { };
      nix.envVars = opt (t.attrsOf t.str) { };
      nix.package = opt any { out = "/nix"; };
      system.build = opt any { nixos-rebuild = "/nixos-rebuild"; };
      system.autoUpgrade.enable = opt t.bool false;
    };
  };
  # Current nixpkgs: systemd.settings.Manager; older releases: systemd.watchdog.*.
  newManager.options.systemd.settings.Manager = opt (t.attrsOf any) { };
  oldManager.options.systemd.watchdog = {
    runtimeTime = opt (t.nullOr t.str) null;
    device = opt (t.nullOr t.str) null;
  };
  required = {
    boot.initrd.systemd.enable = true;
    boot.loader.systemd-boot.enable = true;
  };

  evaluate =
    {
      user,
      manager ? newManager,
    }:
    (lib.evalModules {
      modules = [
        nixos
        manager
        ./../module.nix
        {
          _module.args = { inherit pkgs utils; };
          services.bootguard.package = package;
        }
        required
        user
      ];
    }).config;
  failedAssertions = c: map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  exec = args: lib.concatMapStringsSep " " builtins.toJSON args;
  bg = args: exec ([ "/bootguard/bin/bootguard" "--esp" "/boot" ] ++ args);

  server = evaluate {
    user.services.bootguard = {
      enable = true;
      role = "server";
    };
  };
  workstation = evaluate {
    manager = oldManager;
    user = {
      services.bootguard = {
        enable = true;
        role = "workstation";
        tries = 5;
        promoteAfter = 3;
        watchdog.handOffToSystemd = false;
        credentials.ntfy-token = "/run/keys/ntfy";
        notify = [
          {
            kind = "ntfy";
            url = "https://ntfy.example.net";
            topic = "hosts";
            token_file = "ntfy-token";
          }
        ];
        checks = [
          {
            name = "web";
            kind = "http";
            url = "http://localhost/";
            retries = 3;
          }
        ];
        gitops = {
          enable = true;
          repo = "/etc/nixos";
          autoPush = true;
        };
      };
      boot.loader.systemd-boot.configurationLimit = 10;
      fileSystems."/var".neededForBoot = false;
    };
  };
  oldServer = evaluate {
    manager = oldManager;
    user.services.bootguard.enable = true;
  };
  broken = evaluate {
    user = {
      services.bootguard = {
        enable = true;
        watchdog.handOffToSystemd = false;
        notify = [
          {
            kind = "ntfy";
            url = "u";
            token = "inline";
            password_file = "/nix/store/x-password";
          }
        ];
        gitops = {
          enable = true;
          repo = "/r";
        };
      };
      boot.initrd.systemd.enable = lib.mkForce false;
      boot.initrd.systemd.extraConfig = "RuntimeWatchdogSec=10";
      system.autoUpgrade.enable = true;
      systemd.settings.Manager.RuntimeWatchdogSec = "20s";
    };
  };

  expectations = [
    # server preset
    [
      "server tries"
      server.services.bootguard.tries
      2
    ]
    [
      "server watchdog"
      (server.systemd.settings.Manager)
      {
        RuntimeWatchdogSec = "30s";
        WatchdogDevice = "/dev/watchdog0";
      }
    ]
    [
      "server onFailure"
      server.services.bootguard.validator.onFailure
      "reboot"
    ]
    [
      "server gitops"
      [
        server.services.bootguard.gitops.mode
        server.services.bootguard.gitops.dates
      ]
      [
        "switch"
        "daily"
      ]
    ]
    [
      "server assertions"
      (failedAssertions server)
      [ ]
    ]
    [
      "kernel params"
      server.boot.kernelParams
      [ "panic=10" ]
    ]
    [
      "initrd step"
      server.boot.initrd.systemd.services.bootguard-initrd.serviceConfig.ExecStart
      (exec [
        "/initrd-python/bin/python3"
        "-I"
        "-S"
        "-m"
        "bootguard"
        "--state-dir"
        "/sysroot/var/lib/bootguard"
        "initrd"
        "--mount-esp"
        "--watchdog-timeout"
        "60"
        "--watchdog-device"
        "/dev/watchdog0"
      ])
    ]
    [
      "validator"
      server.systemd.services.bootguard-validate.serviceConfig.ExecStart
      [
        ""
        (bg [
          "validate"
          "--config"
          "/etc/bootguard/checks.toml"
        ])
      ]
    ]
    [
      "one blesser"
      server.systemd.services.systemd-bless-boot.enable
      false
    ]
    [
      "install hook"
      server.boot.loader.systemd-boot.extraInstallCommands
      "/stage-trial/bin/bootguard-stage-trial --esp /boot --tries 2\n"
    ]
    [
      "state directory"
      server.systemd.tmpfiles.rules
      [ "d /var/lib/bootguard 0700 root root -" ]
    ]
    [
      "no gitops unless enabled"
      (server.systemd.services ? bootguard-upgrade)
      false
    ]
    # workstation preset, overridden, on an old nixpkgs, with keepalive and gitops
    [
      "override beats preset"
      workstation.services.bootguard.tries
      5
    ]
    [
      "workstation onFailure"
      workstation.services.bootguard.validator.onFailure
      "report"
    ]
    [
      "keepalive instead of PID 1"
      [
        workstation.systemd.watchdog.runtimeTime
        workstation.systemd.services.bootguard-keepalive.serviceConfig.ExecStart
      ]
      [
        null
        (bg [
          "watchdog"
          "run"
          "--device"
          "/dev/watchdog0"
          "--timeout"
          "60"
          "--handoff"
        ])
      ]
    ]
    [
      "promote and credentials"
      [
        workstation.systemd.services.bootguard-validate.serviceConfig.ExecStart
        workstation.systemd.services.bootguard-validate.serviceConfig.LoadCredential
      ]
      [
        [
          ""
          (bg [
            "validate"
            "--config"
            "/etc/bootguard/checks.toml"
            "--promote-after"
            "3"
          ])
        ]
        [ "ntfy-token:/run/keys/ntfy" ]
      ]
    ]
    [
      "upgrade"
      workstation.systemd.services.bootguard-upgrade.serviceConfig.ExecStart
      (bg [
        "upgrade"
        "--repo"
        "/etc/nixos"
        "--branch"
        "dev"
        "--remote"
        "origin"
        "--strategy"
        "abort"
        "--mode"
        "boot"
        "--build-command"
        "nixos-rebuild build --flake /etc/nixos#web1"
        "--switch-command"
        "nixos-rebuild {mode} --flake /etc/nixos#web1"
      ])
    ]
    [
      "autoPush"
      workstation.systemd.services.bootguard-commit.serviceConfig.ExecStart
      (bg [
        "commit"
        "--repo"
        "/etc/nixos"
        "--branch"
        "dev"
        "--push"
      ])
    ]
    [
      "checks.toml leaves unset keys out"
      (lib.hasInfix ''{"after":[],"kind":"http","name":"web","required":true,"retries":3,"url":"http://localhost/"}'' workstation.environment.etc."bootguard/checks.toml".source)
      true
    ]
    [
      "warnings"
      (builtins.length workstation.warnings)
      2
    ]
    [
      "old nixpkgs hand-off"
      oldServer.systemd.watchdog
      {
        runtimeTime = "30s";
        device = "/dev/watchdog0";
      }
    ]
    # misconfigurations
    [
      "assertions"
      (builtins.length (failedAssertions broken))
      6
    ]
  ];

  failures = lib.filter (e: builtins.elemAt e 1 != builtins.elemAt e 2) expectations;
  describe = e: "${builtins.elemAt e 0}: got ${builtins.toJSON (builtins.elemAt e 1)}, expected ${builtins.toJSON (builtins.elemAt e 2)}";
in
if failures == [ ] then "ok" else throw (lib.concatMapStringsSep "\n" describe failures)
