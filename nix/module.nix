# NixOS module for bootguard: services.bootguard. See docs/nixos.md.
#
# What it wires (each piece is described in docs/nixos.md):
#   initrd     bootguard-initrd.service in the systemd initrd (mirrors initrd/bootguard-initrd.service)
#              with a minimal Python tree (initrd-python.nix) in boot.initrd.systemd.storePaths
#   kernel     panic=10
#   watchdog   armed in the initrd, then owned by systemd PID 1 (RuntimeWatchdogSec) or by
#              bootguard-keepalive.service
#   validator  /etc/bootguard/checks.toml, bootguard-validate.service before boot-complete.target,
#              the boot deadline timer, systemd-bless-boot masked (one blesser)
#   trials     boot.loader.systemd-boot.extraInstallCommands stages each newly installed default as a
#              trial (stage-trial.sh), only while a golden generation is pinned (systemd-boot hosts)
#   gitops     bootguard-upgrade.service + timer, bootguard-commit.service + timer (own schedule)
#   monitoring the metrics textfile, node exporter's textfile collector, alert rules, dashboard
#   state      /var/lib/bootguard (0700)
#
# One source of truth per unit: every unit the package ships (systemd/, through systemd.packages) is
# the unit; NixOS writes what this module sets for it as a drop-in (`<unit>.d/overrides.conf`) on
# top. So a command or calendar set here resets the packaged one first (`ExecStart = [ "" … ]`,
# `OnCalendar = [ "" … ]`): systemd *adds* list settings from drop-ins, and refuses a non-oneshot
# service with two ExecStart= lines. Packaged [Install] sections are ignored by NixOS, so wantedBy is
# set here. Options that nixpkgs renamed or removed are chosen from `options`, never read from
# `config` with `or` (a removed option's value throws; `or` only catches a missing attribute).
{
  config,
  lib,
  options,
  pkgs,
  utils,
  ...
}:

let
  cfg = config.services.bootguard;
  roles = import ./roles.nix;
  toml = pkgs.formats.toml { };
  python = cfg.package.python or pkgs.python3;

  exe = lib.getExe cfg.package;
  stateDir = "/var/lib/bootguard";

  # ------------------------------------------------------------------------------------- loader
  sdboot = config.boot.loader.systemd-boot.enable;
  grub = !sdboot && config.boot.loader.grub.enable;
  esp = config.boot.loader.efi.efiSysMountPoint;
  xbootldr =
    if options.boot.loader.systemd-boot ? xbootldrMountPoint then
      config.boot.loader.systemd-boot.xbootldrMountPoint
    else
      null;
  # Global options first, then the command: `bootguard --esp /boot validate …`. GRUB hosts name
  # GRUB's environment block to each command instead (`--grub-env`, command options).
  globalArgs = lib.optionals sdboot (
    [
      "--esp"
      esp
    ]
    ++ lib.optionals (xbootldr != null) [
      "--xbootldr"
      xbootldr
    ]
  );
  grubArgs = prefix: lib.optionals grub [
    "--grub-env"
    "${prefix}${cfg.grub.envFile}"
  ];
  bg = args: utils.escapeSystemdExecArgs ([ exe ] ++ globalArgs ++ args);
  # A setting that replaces the packaged unit's (drop-ins add to list settings; "" resets them).
  reset = value: [
    ""
    value
  ];
  nativeBootCounting =
    options.boot.loader.systemd-boot ? bootCounting && config.boot.loader.systemd-boot.bootCounting.enable;

  # ---------------------------------------------------------------------------------- validator
  checkKinds = [
    "command"
    "tcp"
    "http"
    "dns"
    "ping"
    "unit"
    "no-failed-units"
    "path"
    "disk"
    "script"
  ];
  notifierKinds = [
    "ntfy"
    "webhook"
    "smtp"
    "forge-issue"
  ];
  # Inline secrets are refused here as in bootguard/validator/config.py: name a file (`*_file`).
  secretKeys = [
    "token"
    "password"
    "secret"
    "api_key"
  ];
  dropNulls = lib.filterAttrs (_: v: v != null);

  checkModule = {
    freeformType = toml.type;
    options = {
      name = lib.mkOption {
        type = lib.types.str;
        description = "Name of the check (unique; other checks refer to it in `after`).";
      };
      kind = lib.mkOption {
        type = lib.types.enum checkKinds;
        description = "What the check does; the kind-specific keys are in docs/validator.md.";
      };
      required = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Whether a failure rejects the boot (false: reported only).";
      };
      command = lib.mkOption {
        type = lib.types.nullOr (lib.types.listOf lib.types.str);
        default = null;
        description = "argv of a `command` check (never run through a shell).";
      };
      host = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Host of a `tcp`, `dns` or `ping` check.";
      };
      port = lib.mkOption {
        type = lib.types.nullOr lib.types.port;
        default = null;
        description = "Port of a `tcp` check.";
      };
      url = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "URL of an `http` check.";
      };
      timeout = lib.mkOption {
        type = lib.types.nullOr lib.types.number;
        default = null;
        description = "Seconds one attempt may take (bootguard's default: 10).";
      };
      retries = lib.mkOption {
        type = lib.types.nullOr lib.types.ints.unsigned;
        default = null;
        description = "Attempts after the first (bootguard's default: 0).";
      };
      grace = lib.mkOption {
        type = lib.types.nullOr lib.types.number;
        default = null;
        description = "Seconds to wait before the first attempt (bootguard's default: 0).";
      };
      after = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = "Names of checks that must pass before this one runs.";
      };
    };
  };

  notifyModule = {
    freeformType = toml.type;
    options.kind = lib.mkOption {
      type = lib.types.enum notifierKinds;
      description = "Notifier kind; its keys are in docs/validator.md. Secrets only as `*_file`.";
    };
  };

  checksToml = toml.generate "checks.toml" {
    validator = {
      inherit (cfg.validator) deadline;
      on_failure = cfg.validator.onFailure;
    }
    // cfg.validator.settings;
    check = map dropNulls cfg.checks;
    notify = cfg.notify;
  };
  # Parsed at build time by bootguard's own loader, so a typo fails `nixos-rebuild`, not the boot.
  checksFile = pkgs.runCommand "bootguard-checks.toml" { } ''
    ${cfg.package}/libexec/bootguard/check-config ${checksToml}
    cp ${checksToml} "$out"
  '';

  notifyKeys = lib.concatMap builtins.attrNames cfg.notify;
  notifyFiles = lib.concatMap (
    n: lib.mapAttrsToList (_: v: v) (lib.filterAttrs (k: _: lib.hasSuffix "_file" k) n)
  ) cfg.notify;
  loadCredentials = lib.mapAttrsToList (name: path: "${name}:${path}") cfg.credentials;

  validateArgs = [
    "validate"
    "--config"
    "/etc/bootguard/checks.toml"
  ]
  ++ grubArgs ""
  ++ lib.optionals (cfg.promoteAfter != null) [
    "--promote-after"
    (toString cfg.promoteAfter)
  ];

  # ------------------------------------------------------------------------------------- initrd
  initrdPython = pkgs.callPackage ./initrd-python.nix {
    inherit python;
    bootguard = cfg.package;
  };
  initrdArgs = [
    "--state-dir"
    "/sysroot${stateDir}"
    "initrd"
  ]
  # systemd-boot names the ESP in LoaderDevicePartUUID; on GRUB the root (and /boot, which must then
  # be mounted in the initrd) is under /sysroot.
  ++ (if sdboot then [ "--mount-esp" ] else grubArgs "/sysroot")
  ++ lib.optionals cfg.watchdog.enable [
    "--watchdog-timeout"
    (toString cfg.watchdog.timeout)
    "--watchdog-device"
    cfg.watchdog.device
  ];

  # -------------------------------------------------------------------------------------- trials
  stageTrial = pkgs.writeShellApplication {
    name = "bootguard-stage-trial";
    runtimeInputs = [
      cfg.package
      pkgs.jq
      pkgs.gawk
    ];
    text = builtins.readFile ./stage-trial.sh;
  };

  # -------------------------------------------------------------------------------------- gitops
  g = cfg.gitops;
  upgradeArgs = [
    "upgrade"
    "--repo"
    g.repo
    "--branch"
    g.branch
    "--remote"
    g.remote
    "--strategy"
    g.strategy
    "--mode"
    g.mode
    "--build-command"
    g.buildCommand
    "--switch-command"
    g.switchCommand
  ]
  ++ lib.optionals (g.validateCommand != null) [
    "--validate-command"
    g.validateCommand
  ]
  ++ lib.optional g.verifySignatures "--verify-signatures"
  ++ fleetArgs;
  f = g.fleet;
  fleetArgs =
    lib.optional f.publishVerdicts "--publish-verdicts"
    ++ lib.optionals (f.canaries != null) [
      "--canaries"
      (toString f.canaries)
    ]
    ++ lib.optionals (f.canaryHosts != [ ]) [
      "--canary-hosts"
      (lib.concatStringsSep "," f.canaryHosts)
    ]
    ++ lib.optionals (f.soak != null) [
      "--soak"
      f.soak
    ]
    ++ lib.optional f.ignoreQuarantine "--ignore-quarantine"
    ++ lib.optionals (f.host != null) [
      "--host"
      f.host
    ];
  commitArgs = [
    "commit"
    "--repo"
    g.repo
    "--branch"
    g.branch
  ]
  ++ lib.optional g.commit.push "--push";
  # The packaged units read these (their ExecStart, and ExecCondition where they have one): keep
  # them equal to the module's arguments.
  gitopsVars = {
    BOOTGUARD_REPO = g.repo;
    BOOTGUARD_BRANCH = g.branch;
    BOOTGUARD_REMOTE = g.remote;
  };
  gitopsEnv =
    config.nix.envVars // { HOME = "/root"; } // config.networking.proxy.envVars // gitopsVars // metricsEnv;
  gitopsPath = [
    pkgs.coreutils
    pkgs.gitMinimal
    config.nix.package.out
    config.system.build.nixos-rebuild
  ];

  # systemd.settings.Manager replaced systemd.watchdog.* in current nixpkgs; older releases only have
  # the latter (where the new name does not exist, defining it would be an error).
  managerWatchdog =
    let
      settings = {
        RuntimeWatchdogSec = "${toString cfg.watchdog.runtimeSec}s";
        WatchdogDevice = cfg.watchdog.device;
      };
    in
    if options.systemd ? settings then
      { systemd.settings.Manager = settings; }
    else
      {
        systemd.watchdog = {
          runtimeTime = settings.RuntimeWatchdogSec;
          device = settings.WatchdogDevice;
        };
      };

  # RuntimeWatchdogSec as configured by anyone (null: PID 1 leaves the watchdog alone).
  managerRuntime =
    if options.systemd ? settings then
      config.systemd.settings.Manager.RuntimeWatchdogSec or null
    else
      config.systemd.watchdog.runtimeTime or null;

  # Whether systemd in the initrd opens the watchdog. 25.11 replaced boot.initrd.systemd.extraConfig
  # by boot.initrd.systemd.settings.Manager and made the old name a removal (reading it throws).
  initrdSystemd = options.boot.initrd.systemd;
  initrdOwnsWatchdog =
    if initrdSystemd ? settings then
      config.boot.initrd.systemd.settings.Manager ? RuntimeWatchdogSec
    else if initrdSystemd ? extraConfig then
      lib.hasInfix "RuntimeWatchdogSec" config.boot.initrd.systemd.extraConfig
    else
      false;

  # ------------------------------------------------------------------------------- monitoring
  mon = cfg.monitoring;
  metricsFile = "${mon.textfileDirectory}/bootguard.prom";
  metricsEnv = lib.optionalAttrs mon.enable { BOOTGUARD_METRICS_FILE = metricsFile; };
  nodeExporter = config.services.prometheus.exporters.node;
  rulesFile = ../monitoring/prometheus/bootguard.rules.yml;
  dashboardFile = ../monitoring/grafana/bootguard-fleet.json;
  dashboards = pkgs.runCommand "bootguard-dashboards" { } ''
    mkdir -p "$out"
    cp ${dashboardFile} "$out/bootguard-fleet.json"
  '';

  # Role presets: every value at mkDefault priority. The attribute names come from roles.nix alone
  # (never from config), so selecting a role cannot recurse into the options it sets.
  presets = lib.mkMerge (
    lib.mapAttrsToList (
      name: preset: lib.mkIf (cfg.role == name) (lib.mapAttrsRecursive (_: lib.mkDefault) preset)
    ) roles
  );

  separateVar = lib.filter (
    m: lib.hasAttr m config.fileSystems && !config.fileSystems.${m}.neededForBoot
  ) [
    "/var"
    "/var/lib"
  ];
in
{
  imports = [
    (lib.mkRenamedOptionModule
      [ "services" "bootguard" "gitops" "autoPush" ]
      [ "services" "bootguard" "gitops" "commit" "push" ]
    )
  ];

  meta = {
    maintainers = [
      {
        name = "bootguard maintainers";
        email = "maintainers@users.noreply.r-seed-4e78cde5.example";
        github = "bootguard";
      }
    ];
    doc = ../docs/nixos.md;
  };

  options.services.bootguard = {
    enable = lib.mkEnableOption "bootguard: boot counting with a golden fallback, watchdog, validator and GitOps";

    # The flake's nixosModules.default sets it to its own package; importing module.nix alone
    # needs pkgs.bootguard (the flake's overlays.default) or this option set.
    package = lib.mkPackageOption pkgs "bootguard" { };

    role = lib.mkOption {
      type = lib.types.nullOr (
        lib.types.enum [
          "server"
          "workstation"
        ]
      );
      default = null;
      description = ''
        Preset for the options below (see nix/roles.nix); each preset value can be overridden.
        `server`: 2 tries, watchdog 60 s then RuntimeWatchdogSec=30s, reboot on a failed check,
        upgrades with `switch`, commits weekly without pushing, conflicts resolved `prefer-remote`.
        `workstation`: 3 tries, watchdog 120 s then 60 s, only report a failed check (never reboot
        under a user), upgrades with `boot`, commits daily and pushes, conflicts resolved
        `prefer-local`.
      '';
    };

    tries = lib.mkOption {
      type = lib.types.ints.between 1 100;
      default = 2;
      description = "Failed boots of a trial before the loader falls back to golden (`bootguard trial --tries`).";
    };

    promoteAfter = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      description = "Promote a passed trial to golden after this many good boots (`bootguard validate --promote-after`); null: never automatically.";
    };

    stageTrials = lib.mkOption {
      type = lib.types.bool;
      default = config.boot.loader.systemd-boot.enable;
      defaultText = lib.literalExpression "config.boot.loader.systemd-boot.enable";
      description = "Stage every generation that `nixos-rebuild boot|switch` installs as a trial (only while a golden generation is pinned; systemd-boot hosts).";
    };

    grub.envFile = lib.mkOption {
      type = lib.types.str;
      default = "/boot/grub/grubenv";
      description = "On GRUB hosts: GRUB's environment block (`--grub-env`); its file system must be mounted in the initrd.";
    };

    watchdog = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Arm the hardware watchdog in the initrd and keep it owned until shutdown.";
      };
      device = lib.mkOption {
        type = lib.types.str;
        default = "/dev/watchdog0";
        description = "Watchdog device, the same for the initrd step and for its next owner.";
      };
      timeout = lib.mkOption {
        type = lib.types.ints.between 1 65535;
        default = 60;
        description = "Timeout (seconds) the initrd step arms the watchdog with; it must cover switch-root and PID 1's start-up.";
      };
      runtimeSec = lib.mkOption {
        type = lib.types.ints.between 1 65535;
        default = lib.max 1 (cfg.watchdog.timeout / 2);
        defaultText = lib.literalExpression "max 1 (watchdog.timeout / 2)";
        description = "Timeout (seconds) of the owner after the initrd: systemd's RuntimeWatchdogSec, or `bootguard watchdog run --timeout`.";
      };
      handOffToSystemd = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Let systemd PID 1 own the watchdog (RuntimeWatchdogSec); false: bootguard-keepalive.service feeds it.";
      };
      kernelModules = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "i6300esb" ];
        description = "Watchdog drivers to load in the initrd, so that the device exists when the early-boot step runs.";
      };
    };

    checks = lib.mkOption {
      type = lib.types.listOf (lib.types.submodule checkModule);
      default = [ ];
      example = lib.literalExpression ''
        [
          { name = "sshd"; kind = "unit"; unit = "sshd.service"; }
          { name = "web"; kind = "http"; url = "http://localhost/health"; retries = 3; after = [ "sshd" ]; }
        ]
      '';
      description = "Health checks, rendered to `[[check]]` tables of /etc/bootguard/checks.toml (keys as in docs/validator.md).";
    };

    validator = {
      deadline = lib.mkOption {
        type = lib.types.number;
        default = 300;
        description = "Seconds the whole validator run may take (`[validator] deadline`).";
      };
      onFailure = lib.mkOption {
        type = lib.types.strMatching "reboot|report|reboot-after:[0-9]+(\\.[0-9]+)?";
        default = "reboot";
        description = "What a failed required check leads to after the entry is marked bad: `reboot`, `reboot-after:SECONDS` or `report`.";
      };
      bootDeadline = lib.mkOption {
        type = lib.types.str;
        default = "15min";
        description = "OnBootSec of bootguard-boot-deadline.timer: a boot that has not reached boot-complete.target by then is rejected.";
      };
      settings = lib.mkOption {
        type = toml.type;
        default = { };
        example = {
          metrics_file = "/var/lib/prometheus-node-exporter/bootguard.prom";
        };
        description = "Further `[validator]` keys (metrics_file, dropin_dirs, script_timeout, sequential_scripts).";
      };
      path = lib.mkOption {
        type = lib.types.listOf lib.types.package;
        default = [ ];
        description = "Packages on the PATH of the validator (for `command` checks); ping comes with iputils.";
      };
    };

    notify = lib.mkOption {
      type = lib.types.listOf (lib.types.submodule notifyModule);
      default = [ ];
      example = lib.literalExpression ''
        [ { kind = "ntfy"; url = "https://ntfy.example.net"; topic = "hosts"; token_file = "ntfy-token"; } ]
      '';
      description = ''
        Notifiers, rendered to `[[notify]]` tables. Secrets only as `*_file` keys naming a credential
        from `credentials` (relative name) or an absolute path outside the Nix store; never inline.
      '';
    };

    credentials = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      example = {
        ntfy-token = "/run/keys/ntfy-token";
      };
      description = "Secret files handed to the validator with systemd LoadCredential= (name → path on the host, outside the Nix store).";
    };

    gitops = {
      enable = lib.mkEnableOption "pulling, building, validating and switching the configuration repository on a timer";
      repo = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/etc/nixos";
        description = "The configuration repository (a flake) on this host; required with gitops.enable.";
      };
      branch = lib.mkOption {
        type = lib.types.str;
        default = "dev";
        description = "Branch to follow (and to commit on).";
      };
      remote = lib.mkOption {
        type = lib.types.str;
        default = "origin";
        description = "Remote to fetch from.";
      };
      strategy = lib.mkOption {
        type = lib.types.enum [
          "prefer-remote"
          "prefer-local"
          "abort"
        ];
        default = "abort";
        description = "What to do when local commits conflict with the remote (nothing is ever lost).";
      };
      commit = {
        enable = lib.mkOption {
          type = lib.types.bool;
          default = true;
          description = "Commit the host's own changes to the repository on a schedule (`bootguard-commit.timer`; secrets are refused).";
        };
        dates = lib.mkOption {
          type = lib.types.str;
          default = "daily";
          description = "When to commit (systemd.time(7) calendar event).";
        };
        push = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = "Push the commits (`bootguard commit --push`); false: they wait for review on the host.";
        };
        randomizedDelaySec = lib.mkOption {
          type = lib.types.str;
          default = "10min";
          description = "RandomizedDelaySec of the commit timer.";
        };
      };
      fleet = {
        publishVerdicts = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = "`upgrade --publish-verdicts`: share this host's verdict on each commit with the fleet.";
        };
        canaries = lib.mkOption {
          type = lib.types.nullOr lib.types.ints.unsigned;
          default = null;
          description = "`upgrade --canaries N`: hosts that must bless a commit before this one takes it.";
        };
        canaryHosts = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = [ ];
          description = "`upgrade --canary-hosts a,b`: the canary hosts by name.";
        };
        soak = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          example = "2h";
          description = "`upgrade --soak DURATION`: how long a commit must have been blessed by the canaries.";
        };
        ignoreQuarantine = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = "`upgrade --ignore-quarantine`: deploy commits the fleet quarantined.";
        };
        host = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          description = "`upgrade --host NAME`: this host's name in the fleet's verdicts (null: bootguard's default).";
        };
      };
      flake = lib.mkOption {
        type = lib.types.str;
        default = config.networking.hostName;
        defaultText = lib.literalExpression "config.networking.hostName";
        description = "nixosConfigurations attribute of this host in the repository's flake.";
      };
      buildCommand = lib.mkOption {
        type = lib.types.str;
        default = "nixos-rebuild build --flake ${g.repo}#${g.flake}";
        defaultText = lib.literalExpression ''"nixos-rebuild build --flake ''${repo}#''${flake}"'';
        description = "Build command (split like a shell would, never run by one; {host} {mode} {commit} {repo} are replaced).";
      };
      switchCommand = lib.mkOption {
        type = lib.types.str;
        default = "nixos-rebuild {mode} --flake ${g.repo}#${g.flake}";
        defaultText = lib.literalExpression ''"nixos-rebuild {mode} --flake ''${repo}#''${flake}"'';
        description = "Switch command; {mode} becomes gitops.mode.";
      };
      validateCommand = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Pre-switch validation command (null: none).";
      };
      mode = lib.mkOption {
        type = lib.types.enum [
          "switch"
          "boot"
          "test"
        ];
        default = "switch";
        description = "nixos-rebuild verb of the switch command.";
      };
      dates = lib.mkOption {
        type = lib.types.str;
        default = "daily";
        description = "When to upgrade (systemd.time(7) calendar event).";
      };
      randomizedDelaySec = lib.mkOption {
        type = lib.types.str;
        default = "30min";
        description = "RandomizedDelaySec of the upgrade timer.";
      };
      verifySignatures = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Require `git verify-commit` to pass on new commits.";
      };
    };

    monitoring = {
      enable = lib.mkEnableOption "the Prometheus textfile metrics of every bootguard run";
      textfileDirectory = lib.mkOption {
        type = lib.types.str;
        # NixOS's node exporter has no textfile directory of its own; this one is set as its
        # --collector.textfile.directory (monitoring.nodeExporter). If yours already reads another
        # directory, set this option to it and monitoring.nodeExporter = false.
        default = "/var/lib/prometheus-node-exporter-text-files";
        description = "node exporter's textfile directory; bootguard writes bootguard.prom there (BOOTGUARD_METRICS_FILE).";
      };
      nodeExporter = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "With monitoring.enable: turn on node exporter's textfile collector with textfileDirectory (when services.prometheus.exporters.node is enabled); false: you configured it yourself.";
      };
      prometheusRules = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Add bootguard's alert rules (monitoring/prometheus/bootguard.rules.yml) to services.prometheus.ruleFiles.";
      };
      grafanaDashboard = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Provision bootguard's fleet dashboard (monitoring/grafana/bootguard-fleet.json) in services.grafana.";
      };
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      { services.bootguard = presets; }

      {
        assertions = [
          {
            assertion = config.boot.initrd.systemd.enable;
            message = "services.bootguard needs boot.initrd.systemd.enable = true: its early-boot step (bootguard-initrd.service) runs in the systemd initrd.";
          }
          {
            assertion = sdboot || grub;
            message = "services.bootguard needs boot.loader.systemd-boot.enable or boot.loader.grub.enable: the fallback is systemd-boot's boot counting or, on GRUB, bootguard's own counting with saved_entry/next_entry.";
          }
          {
            assertion = !nativeBootCounting;
            message = "services.bootguard and boot.loader.systemd-boot.bootCounting.enable both count and bless boots; keep only services.bootguard.";
          }
          {
            assertion = !(grub && cfg.stageTrials);
            message = "services.bootguard.stageTrials works with systemd-boot's installer only; on GRUB stage trials with `bootguard trial ENTRY --grub-env … --match init=…` (docs/nixos.md).";
          }
          {
            assertion = !(grub && lib.hasPrefix "/boot/" cfg.grub.envFile && config.fileSystems ? "/boot" && !config.fileSystems."/boot".neededForBoot);
            message = "services.bootguard on GRUB: the initrd step reads ${cfg.grub.envFile}; set fileSystems.\"/boot\".neededForBoot = true so that the initrd mounts it.";
          }
          {
            # The files come from this checkout's monitoring/ (docs/monitoring.md).
            assertion = (!mon.prometheusRules || builtins.pathExists rulesFile) && (!mon.grafanaDashboard || builtins.pathExists dashboardFile);
            message = "services.bootguard.monitoring: monitoring/prometheus/bootguard.rules.yml or monitoring/grafana/bootguard-fleet.json is missing from this bootguard source; update it or turn prometheusRules/grafanaDashboard off.";
          }
          {
            assertion = !g.enable || g.repo != null;
            message = "services.bootguard.gitops.enable needs services.bootguard.gitops.repo (the configuration repository on this host, e.g. \"/etc/nixos\").";
          }
          {
            assertion = !initrdOwnsWatchdog;
            message = "services.bootguard arms the watchdog in the initrd; systemd in the initrd must not open it too (remove RuntimeWatchdogSec from the initrd's systemd configuration).";
          }
          {
            assertion = cfg.watchdog.handOffToSystemd || !cfg.watchdog.enable || managerRuntime == null;
            message = "services.bootguard.watchdog.handOffToSystemd = false: bootguard-keepalive.service feeds the watchdog, so systemd must not (unset RuntimeWatchdogSec).";
          }
          {
            assertion = !(lib.any (k: lib.elem k secretKeys) notifyKeys);
            message = "services.bootguard.notify: put secrets in files and use the *_file keys (token_file, password_file, …), never ${lib.concatStringsSep "/" secretKeys} inline.";
          }
          {
            assertion = !(lib.any (p: lib.hasPrefix builtins.storeDir (toString p)) (notifyFiles ++ builtins.attrValues cfg.credentials));
            message = "services.bootguard: secret files must not be in the Nix store (it is world-readable); give a path on the host, e.g. /run/keys/….";
          }
          {
            assertion = !(g.enable && config.system.autoUpgrade.enable);
            message = "services.bootguard.gitops and system.autoUpgrade both upgrade this host; enable only one.";
          }
        ];

        warnings =
          lib.optional (sdboot && config.boot.loader.systemd-boot.configurationLimit != null) ''
            services.bootguard: boot.loader.systemd-boot.configurationLimit is set. The GC root of
            `bootguard pin-golden` keeps golden's store paths, but systemd-boot's installer still
            deletes the kernel and initrd of generations beyond the limit from the ESP; keep the limit
            large enough that golden stays within it.''
          ++ map (m: ''
            services.bootguard: ${m} is a separate file system that the initrd does not mount, so the
            early-boot step would write under /sysroot${m} on the root file system; set
            fileSystems."${m}".neededForBoot = true.'') separateVar;

        environment.systemPackages = [ cfg.package ];
        environment.etc."bootguard/checks.toml".source = checksFile;

        systemd.tmpfiles.rules = [ "d ${stateDir} 0700 root root -" ];

        # A panic before the initrd step (or anywhere) reboots, and systemd-boot has already counted
        # the attempt.
        boot.kernelParams = [ "panic=10" ];
      }

      # ---------------------------------------------------------------------------------- initrd
      {
        boot.initrd.availableKernelModules = [
          # `bootguard initrd --mount-esp` mounts the ESP (vfat) named by LoaderDevicePartUUID.
          "vfat"
          "nls_cp437"
          "nls_iso8859-1"
        ];
        boot.initrd.kernelModules = cfg.watchdog.kernelModules;
        boot.initrd.systemd.storePaths = [ "${initrdPython}" ];

        # Mirrors initrd/bootguard-initrd.service; only ExecStart differs: the minimal interpreter
        # runs `-I -S -m bootguard` directly with the options initrd/bootguard-initrd would pass
        # (plus --watchdog-device, so that the initrd and the next owner use the same device).
        boot.initrd.systemd.services.bootguard-initrd = {
          description = "bootguard early-boot step (assess the last boot, arm the watchdog)";
          wantedBy = [ "initrd.target" ];
          after = [
            "sysroot.mount"
            "sys-firmware-efi-efivars.mount"
            "systemd-modules-load.service"
          ];
          wants = [ "sys-firmware-efi-efivars.mount" ];
          before = [
            "initrd-switch-root.target"
            "initrd-cleanup.service"
          ];
          unitConfig = {
            DefaultDependencies = false;
            ConditionPathExists = "/etc/initrd-release";
          };
          serviceConfig = {
            Type = "oneshot";
            ExecStart = utils.escapeSystemdExecArgs (
              [
                "${initrdPython}/bin/python3"
                "-I"
                "-S"
                "-m"
                "bootguard"
              ]
              ++ initrdArgs
            );
            # A failure of bootguard itself must never stop the boot: the loader's counter still counts.
            SuccessExitStatus = "0 1 2 3 4 5";
            StandardOutput = "journal+console";
          };
        };
      }

      # -------------------------------------------------------------------------------- watchdog
      (lib.mkIf (cfg.watchdog.enable && cfg.watchdog.handOffToSystemd) managerWatchdog)

      (lib.mkIf (cfg.watchdog.enable && !cfg.watchdog.handOffToSystemd) {
        systemd.services.bootguard-keepalive = {
          description = "bootguard: keep the hardware watchdog fed";
          wantedBy = [ "sysinit.target" ];
          before = [
            "sysinit.target"
            "shutdown.target"
          ];
          conflicts = [ "shutdown.target" ];
          unitConfig.DefaultDependencies = false;
          serviceConfig = {
            Type = "notify";
            NotifyAccess = "main";
            # --handoff: stopping closes without the magic 'V', so a hung shutdown still ends in a reset.
            ExecStart = reset (bg [
              "watchdog"
              "run"
              "--device"
              cfg.watchdog.device
              "--timeout"
              (toString cfg.watchdog.runtimeSec)
              "--handoff"
            ]);
            WatchdogSec = "30s";
            Restart = "always";
            RestartSec = "1s";
          };
        };
      })

      # ------------------------------------------------------------------------------- validator
      {
        systemd.packages = [ cfg.package ];

        systemd.services.bootguard-validate = {
          wantedBy = [ "multi-user.target" ];
          requiredBy = [ "boot-complete.target" ];
          # A switch must not re-decide a boot that was decided (and maybe reboot the host).
          restartIfChanged = false;
          path = [ pkgs.iputils ] ++ cfg.validator.path;
          environment = metricsEnv;
          serviceConfig = {
            ExecStart = reset (bg validateArgs);
            LoadCredential = loadCredentials;
          };
        };

        systemd.services.bootguard-boot-deadline = {
          restartIfChanged = false;
          path = [ pkgs.iputils ] ++ cfg.validator.path;
          environment = metricsEnv;
          serviceConfig = {
            ExecStart = reset (bg (validateArgs ++ [ "--boot-deadline" ]));
            LoadCredential = loadCredentials;
          };
        };

        # Records an orderly shutdown or reboot when it is stopped (ExecStop), so the next boot does not
        # take it for a boot that ended without a verdict. A switch must never restart it: the stop
        # would record a shutdown that did not happen.
        systemd.services.bootguard-shutdown = {
          wantedBy = [ "multi-user.target" ];
          restartIfChanged = false;
        };

        systemd.timers.bootguard-boot-deadline = {
          wantedBy = [ "sysinit.target" ];
          timerConfig.OnBootSec = reset cfg.validator.bootDeadline;
        };

        # Not among NixOS's default units on every release; the same as systemd's own.
        systemd.targets.boot-complete = {
          description = "Boot Completion Check";
          documentation = [ "man:systemd.special(7)" ];
          requires = [ "sysinit.target" ];
          after = [ "sysinit.target" ];
          unitConfig.DefaultDependencies = false;
        };

        # One blesser: systemd-bless-boot would bless the trial before the checks ran (greenboot
        # issue 108). enable = false masks it (a /dev/null unit), whatever pulls it in.
        systemd.services.systemd-bless-boot.enable = false;
      }

      # ---------------------------------------------------------------------------------- trials
      (lib.mkIf (cfg.stageTrials && sdboot) {
        boot.loader.systemd-boot.extraInstallCommands = ''
          ${lib.getExe stageTrial} ${
            lib.escapeShellArgs (
              globalArgs
              ++ [
                "--tries"
                (toString cfg.tries)
              ]
            )
          }
        '';
      })

      # ---------------------------------------------------------------------------------- gitops
      # Without a repository only the assertion above speaks (no unit with an empty --repo).
      (lib.mkIf (g.enable && g.repo != null) {
        systemd.services.bootguard-upgrade = {
          description = "bootguard: pull, build, validate and switch the configuration repository";
          # The switch may restart units; this one must not be killed halfway by its own switch.
          restartIfChanged = false;
          unitConfig.X-StopOnRemoval = false;
          after = [ "network-online.target" ];
          wants = [ "network-online.target" ];
          environment = gitopsEnv;
          path = gitopsPath;
          serviceConfig = {
            Type = "oneshot";
            ExecStart = reset (bg upgradeArgs);
            # The packaged unit reads /etc/bootguard/gitops.env (plain systemd hosts); here the
            # module's options are the configuration, so that file would only contradict them.
            EnvironmentFile = [ "" ];
            # 7 = update not applied or rolled back, 8 = git conflict stopped: both are failures the
            # unit must show, so no SuccessExitStatus here.
          };
        };
        # Not startAt: it would add its OnCalendar= to the packaged timer's.
        systemd.timers.bootguard-upgrade = {
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnCalendar = reset g.dates;
            RandomizedDelaySec = g.randomizedDelaySec;
            Persistent = true;
          };
        };
      })

      (lib.mkIf (g.enable && g.repo != null && g.commit.enable) {
        systemd.services.bootguard-commit = {
          description = "bootguard: commit this host's configuration changes";
          restartIfChanged = false;
          after = [ "network-online.target" ];
          wants = [ "network-online.target" ];
          # Never at the same time as an upgrade (gitops.lock), and first when both are due.
          before = [ "bootguard-upgrade.service" ];
          environment = gitopsEnv;
          path = gitopsPath;
          serviceConfig = {
            Type = "oneshot";
            ExecStart = reset (bg commitArgs);
            EnvironmentFile = [ "" ];
          };
        };
        systemd.timers.bootguard-commit = {
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnCalendar = reset g.commit.dates;
            RandomizedDelaySec = g.commit.randomizedDelaySec;
            Persistent = true;
          };
        };
      })

      # ------------------------------------------------------------------------------ monitoring
      (lib.mkIf (mon.enable && mon.nodeExporter && nodeExporter.enable) {
        services.prometheus.exporters.node = {
          enabledCollectors = [ "textfile" ];
          extraFlags = [ "--collector.textfile.directory=${mon.textfileDirectory}" ];
        };
      })
      (lib.mkIf mon.enable {
        # Readable by node exporter (its own user), written by bootguard as root.
        systemd.tmpfiles.rules = [ "d ${mon.textfileDirectory} 0755 root root -" ];
      })
      (lib.mkIf mon.prometheusRules { services.prometheus.ruleFiles = [ rulesFile ]; })
      (lib.mkIf mon.grafanaDashboard {
        services.grafana.provision.dashboards.settings.providers = [
          {
            name = "bootguard";
            options.path = dashboards;
          }
        ];
      })

      # ---------------------------------------------------------------------------------- loader
      (lib.mkIf grub { boot.loader.grub.default = lib.mkDefault "saved"; })
    ]
  );
}
