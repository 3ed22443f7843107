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

      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./module.nix ];
          services.bootguard.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        # The module under lib.evalModules with stand-ins for NixOS (fast, no VM).
        eval = pkgs.runCommand "bootguard-module-eval" {
          result = import ./tests/eval.nix { inherit (nixpkgs) lib; };
        } ''echo "$result" > "$out"'';
        basic = import ./tests/basic.nix {
          inherit pkgs;
          module = self.nixosModules.default;
        };
      });
    };
}
