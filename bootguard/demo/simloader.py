"""A simulated systemd-boot acting on a real directory tree (ESP + efivarfs-format directory).

It uses bootguard's model of the loader (model.loader.simulate_boot) and applies the result to disk:
the entry rename and the variables the next OS sees. `bootguard demo` and the lifecycle tests drive
bootguard's real commands between simulated boots; the real loader is exercised in tests/vm/.
"""

from __future__ import annotations

import os

from bootguard.model.entry import Partition
from bootguard.model.loader import LoaderVersion, simulate_boot
from bootguard.seams import esp as esp_seam
from bootguard.seams.efivars import EfiVars

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.loader import BootSimulation

_VOLATILE = ("LoaderBootCountPath", "LoaderEntrySelected", "LoaderEntries", "LoaderInfo")


class SimulatedLoader:
    def __init__(self, esp: str, efivars: str, info: str = "systemd-boot 252.39-1~deb12u2") -> None:
        self.esp = esp_seam.PartitionRoot(Partition.ESP, esp)
        self.efi = EfiVars(efivars)
        self.version = LoaderVersion.parse(info)
        os.makedirs(efivars, exist_ok=True)

    def reset(self) -> None:
        """A machine reset: volatile variables vanish."""
        for name in _VOLATILE:
            self.efi.delete(name)

    def boot(self, *, rename_fails: bool = False) -> BootSimulation:
        self.reset()
        entries = esp_seam.scan(self.esp)
        conf = esp_seam.read_loader_conf(self.esp)
        sim = simulate_boot(entries, conf, self.efi.snapshot(), self.version, rename_fails=rename_fails)
        if sim.renamed_from and sim.renamed_to:
            os.rename(self.esp.join(sim.renamed_from), self.esp.join(sim.renamed_to))
        if self.efi.read_str("LoaderEntryOneShot") is not None:  # read, then deleted, whatever boots
            self.efi.delete("LoaderEntryOneShot")
        v = sim.vars
        self.efi.write_str("LoaderInfo", v.info or str(self.version), attrs=0x6)
        if v.entry_selected:
            self.efi.write_str("LoaderEntrySelected", v.entry_selected, attrs=0x6)
        if sim.boot_count_path:
            self.efi.write_str("LoaderBootCountPath", sim.boot_count_path, attrs=0x6)
        return sim
