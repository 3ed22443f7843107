# VM test (NixOS test driver): a machine with services.bootguard boots through systemd-boot and the
# systemd initrd; the early-boot step runs, the validator completes the boot, systemd owns the
# watchdog, golden is pinned with its GC root, and installing a new generation stages it as a trial
# that the next boot tries and blesses.
# Run with: nix build 'git+file:///path/to/bootguard?dir=nix#checks.x86_64-linux.basic'
{ pkgs, module }:

let
  common =
    { ... }:
    {
      imports = [ module ];

      virtualisation = {
        useBootLoader = true;
        useEFIBoot = true;
        # i6300esb: a watchdog with sysfs and bootstatus (see docs/vm-harness.md).
        qemu.options = [ "-device i6300esb" ];
      };
      boot.loader.systemd-boot.enable = true;
      boot.loader.efi.canTouchEfiVariables = true;
      boot.initrd.systemd.enable = true;

      services.bootguard = {
        enable = true;
        role = "server";
        watchdog.kernelModules = [ "i6300esb" ];
        checks = [
          {
            name = "journald";
            kind = "unit";
            unit = "systemd-journald.service";
          }
          {
            name = "store";
            kind = "path";
            path = "/nix/store";
            after = [ "journald" ];
          }
        ];
      };
      environment.etc."bootguard-test-generation".text = "first";
    };
in
pkgs.testers.runNixOSTest {
  name = "bootguard-basic";

  nodes = {
    # Never started: only its system is installed as the next generation.
    next =
      { lib, ... }:
      {
        imports = [ common ];
        environment.etc."bootguard-test-generation".text = lib.mkForce "next";
      };

    machine =
      { nodes, ... }:
      {
        imports = [ common ];
        system.extraDependencies = [ nodes.next.system.build.toplevel ];
      };
  };

  testScript =
    { nodes, ... }:
    let
      next = nodes.next.system.build.toplevel;
    in
    ''
      import json

      def status():
          return json.loads(machine.succeed("bootguard --json status"))

      machine.start()
      machine.wait_for_unit("multi-user.target")

      with subtest("the early-boot step ran in the initrd"):
          machine.succeed("journalctl -b -u bootguard-initrd.service --no-pager | grep -q bootguard-initrd")

      with subtest("the validator completed the boot and is the only blesser"):
          machine.wait_for_unit("bootguard-validate.service")
          machine.wait_for_unit("boot-complete.target")
          machine.succeed("test \"$(systemctl is-enabled systemd-bless-boot.service || true)\" = masked")

      with subtest("systemd owns the watchdog that the initrd armed"):
          machine.succeed("systemctl show -p RuntimeWatchdogUSec | grep -qx 'RuntimeWatchdogUSec=30s'")
          machine.succeed("test \"$(cat /sys/class/watchdog/watchdog0/state)\" = active")

      with subtest("bootguard status answers"):
          s = status()
          assert s["efi"] and s["golden"] is None, s
          machine.succeed("bootguard status")

      with subtest("state directory is private"):
          machine.succeed("test \"$(stat -c %a /var/lib/bootguard)\" = 700")

      with subtest("golden is pinned with its GC root"):
          machine.succeed("bootguard pin-golden")
          machine.succeed("test -L /nix/var/nix/gcroots/bootguard-golden")
          golden = status()["golden"]["filename"]

      with subtest("installing a new generation stages it as a trial"):
          machine.succeed("nix-env -p /nix/var/nix/profiles/system --set ${next}")
          machine.succeed("${next}/bin/switch-to-configuration boot")
          s = status()
          assert s["trial"] is not None and s["trial"]["tries"] == 2, s
          assert s["trial"]["filename"] != golden, s

      with subtest("the trial boots, passes its checks and is blessed"):
          machine.shutdown()
          machine.start()
          machine.wait_for_unit("boot-complete.target")
          machine.succeed("grep -qx next /etc/bootguard-test-generation")
          s = status()
          assert s["trial"] is None and s["golden"]["filename"] == golden, s
    '';
}
