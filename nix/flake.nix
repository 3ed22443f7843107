# bootguard as a flake: the package, the NixOS module and a VM test.
#
# The flake lives in nix/ but builds from the whole repository (package.nix takes its sources from
# ../), so refer to it as a git flake with `dir=nix`, e.g.
#   nix build 'git+file:///path/to/bootguard?dir=nix'
#   nix flake check 'git+file:///path/to/bootguard?dir=nix'
{
  description = "bootguard: keep self-updating systemd-boot hosts from ever staying bricked";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        bootguard = pkgs.callPackage ./package.nix { };
        default = bootguard;
      });

      # pkgs.bootguard, the default of services.bootguard.package (mkPackageOption).
      overlays.default = final: _: { bootguard = final.callPackage ./package.nix { }; };

      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./module.nix ];
          services.bootguard.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        # The module with nixpkgs' own lib against the release-shaped option trees (fast, no VM):
        # every release × role evaluates without a failed assertion or warning.
        eval =
          let
            shapes = import ./tests/shapes.nix { inherit (nixpkgs) lib; };
            results = nixpkgs.lib.concatMap (
              release:
              map (
                role:
                shapes.evaluate {
                  inherit release;
                  user.services.bootguard = {
                    enable = true;
                    inherit role;
                    gitops = {
                      enable = true;
                      repo = "/etc/nixos";
                    };
                  };
                }
              ) [ "server" "workstation" ]
            ) shapes.releases;
            bad = nixpkgs.lib.filter (r: r.failedAssertions != [ ] || r.warnings != [ ]) results;
          in
          assert bad == [ ];
          pkgs.runCommand "bootguard-module-eval" { } ''echo ok > "$out"'';
        basic = import ./tests/basic.nix {
          inherit pkgs;
          module = self.nixosModules.default;
        };
      });
    };
}
