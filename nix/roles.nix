# Role presets for services.bootguard.role. Pure data (no lib, no pkgs) so that tests can evaluate it
# with a bare `nix-instantiate --eval`. module.nix applies every value with lib.mkDefault, so any of
# them can be overridden by setting the option itself.
{
  # Unattended machines: fall back quickly, reboot on a failed check, apply updates at once.
  server = {
    tries = 2;
    watchdog = {
      # Armed by the initrd step; covers the initrd, switch-root and PID 1's start-up ...
      timeout = 60;
      # ... then systemd PID 1 owns the device with RuntimeWatchdogSec=30s.
      runtimeSec = 30;
    };
    validator.onFailure = "reboot";
    gitops = {
      mode = "switch";
      dates = "daily";
      # Local edits are reviewed before they leave the host; on a conflict the fleet's repository wins.
      strategy = "prefer-remote";
      commit = {
        dates = "weekly";
        push = false;
      };
    };
  };

  # A person may be logged in: never reboot under them, and let updates wait for the next boot.
  workstation = {
    tries = 3;
    watchdog = {
      timeout = 120;
      runtimeSec = 60;
    };
    validator.onFailure = "report";
    gitops = {
      mode = "boot";
      dates = "daily";
      # The person at the machine edits it: commit daily and push; on a conflict their edit wins.
      strategy = "prefer-local";
      commit = {
        dates = "daily";
        push = true;
      };
    };
  };
}
