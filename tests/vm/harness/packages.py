"""The real systemd-boot binaries Debian ships, and the Debian kernel the guest boots.

systemd-boot 252 (bookworm), 254 (bookworm-backports), 257 (trixie) and 262 (sid) differ in entry ids and
default selection (see shared/reference/vm-harness.md), so every loader scenario runs on each real binary.
They are fetched with `apt-get download systemd-boot-efi=VERSION` through a *private* apt configuration:
its own sources list (the mirror URI of the host's own Debian source, with other suites), its own list and
cache directories and `Dir::Etc::sourceparts=-`, so nothing of the host's apt state changes. The `.deb` is
unpacked with `dpkg-deb -x` and the EFI binary cached per exact version.
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bootguard.errors import NotFoundError
from bootguard.seams.proc import run
from tests.vm.harness.cache import cache_dir

PACKAGE = "systemd-boot-efi"
EFI_IN_DEB = Path("usr/lib/systemd/boot/efi/systemd-bootx64.efi")
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# Major version → the Debian suite that ships it. The exact version is whatever that suite has now.
LOADER_SUITES: dict[str, str] = {
    "252": "bookworm",
    "254": "bookworm-backports",
    "257": "trixie",
    "262": "sid",
}
LOADER_MAJORS: tuple[str, ...] = tuple(LOADER_SUITES)


@dataclass(frozen=True)
class LoaderBinary:
    """One real systemd-boot EFI binary: major ("257"), Debian version, path, LoaderInfo string."""

    major: str
    version: str
    efi: Path
    loader_info: str

    @classmethod
    def from_file(cls, major: str, version: str, efi: Path) -> LoaderBinary:
        return cls(major=major, version=version, efi=efi, loader_info=embedded_loader_info(efi))


@dataclass(frozen=True)
class AptSource:
    """The host's Debian mirror: URI and keyring (from /etc/apt)."""

    uri: str
    signed_by: str


@dataclass(frozen=True)
class Kernel:
    """The Debian kernel in /boot and its module tree."""

    release: str
    vmlinuz: Path
    modules: Path


def embedded_loader_info(efi: Path) -> str:
    """The `LoaderInfo` string systemd-boot embeds in its `.sdmagic` section (`#### LoaderInfo: … ####`)."""
    match = re.search(rb"#### LoaderInfo: (.+?) ####", efi.read_bytes())
    if match is None:
        raise NotFoundError(f"{efi}: no '#### LoaderInfo: … ####' marker; not a systemd-boot binary?")
    return match.group(1).decode("ascii", "replace")


# --- the host's apt configuration -------------------------------------------------------------------


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise NotFoundError(f"{os_release}: no VERSION_CODENAME; is this Debian?")


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif line.startswith("#"):
            continue
        elif line[0].isspace() and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _one_line_entries(text: str) -> list[dict[str, str]]:
    """`deb [opts] URI SUITE COMPONENTS…` lines as deb822-like dicts."""
    out: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        opts: dict[str, str] = {}
        if match := re.match(r"^(deb)\s+\[([^\]]*)\]\s+(.*)$", line):
            for opt in match.group(2).split():
                k, _, v = opt.partition("=")
                opts[k.lower()] = v
            line = f"deb {match.group(3)}"
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "deb":
            out.append(
                {
                    "types": "deb",
                    "uris": fields[1],
                    "suites": fields[2],
                    "components": " ".join(fields[3:]),
                    "signed-by": opts.get("signed-by", ""),
                }
            )
    return out


def host_debian_source(etc_apt: Path = Path("/etc/apt"), codename: str | None = None) -> AptSource:
    """The mirror the host itself uses for its release's `main` (not security, not third-party)."""
    codename = codename or host_codename()
    entries: list[dict[str, str]] = []
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        entries += [s for s in _deb822_stanzas(path.read_text()) if s.get("enabled", "yes") != "no"]
    for path in [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            entries += _one_line_entries(path.read_text())
    for entry in entries:
        if "deb" not in entry.get("types", "").split():
            continue
        if codename in entry.get("suites", "").split() and "main" in entry.get("components", "").split():
            signed_by = entry.get("signed-by", "").strip()
            if not signed_by or "\n" in signed_by:  # inline armoured keys: use the archive keyring
                signed_by = DEFAULT_KEYRING
            return AptSource(uri=entry["uris"].split()[0], signed_by=signed_by)
    raise NotFoundError(
        f"{etc_apt}: no 'deb' source for suite {codename} with component main",
        hint="the harness reuses the host's Debian mirror to fetch other systemd-boot versions",
    )


# --- the private apt configuration ------------------------------------------------------------------


class PrivateApt:
    """apt-get/apt-cache with their own sources, lists and cache: the host's apt state is not touched."""

    def __init__(self, root: Path, source: AptSource) -> None:
        self.root = root
        self.source = source
        self.sources_list = root / "sources.list"
        self.lists = root / "lists"
        self.cache = root / "cache"

    def options(self) -> list[str]:
        opts = {
            "Dir::Etc::sourcelist": str(self.sources_list),
            "Dir::Etc::sourceparts": "-",
            "Dir::State::Lists": str(self.lists),
            "Dir::Cache": str(self.cache),
            "APT::Get::List-Cleanup": "0",
            # Private root-owned dirs: no need to drop to the _apt user (and no warning about it).
            "APT::Sandbox::User": "root",
        }
        return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]

    def write_sources(self) -> None:
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.cache / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        lines = [
            f"deb [signed-by={self.source.signed_by}] {self.source.uri} {suite} main"
            for suite in sorted(set(LOADER_SUITES.values()))
        ]
        self.sources_list.write_text("\n".join(lines) + "\n")

    def update(self) -> None:
        self.write_sources()
        run(["apt-get", *self.options(), "-q", "update"], timeout=600)

    def madison(self, package: str) -> list[tuple[str, str]]:
        """(version, suite) pairs apt knows for `package` in the private configuration."""
        out = run(["apt-cache", *self.options(), "madison", package]).stdout
        pairs: list[tuple[str, str]] = []
        for line in out.splitlines():
            fields = [f.strip() for f in line.split("|")]
            if len(fields) >= 3 and fields[0] == package:
                suite = fields[2].split()[1].split("/")[0] if len(fields[2].split()) > 1 else ""
                pairs.append((fields[1], suite))
        return pairs

    def download(self, package: str, version: str, dest: Path) -> Path:
        run(["apt-get", *self.options(), "-q", "download", f"{package}={version}"], cwd=dest, timeout=600)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if not debs:
            raise NotFoundError(f"apt-get download {package}={version} left no .deb in {dest}")
        return debs[0]


@functools.cache
def private_apt() -> PrivateApt:
    """The private apt configuration, with its package lists fetched once per process."""
    apt = PrivateApt(cache_dir("apt"), host_debian_source())
    apt.update()
    return apt


def _cached(major: str, root: Path) -> LoaderBinary | None:
    for vdir in sorted((root / major).glob("*"), reverse=True):
        efi = vdir / "systemd-bootx64.efi"
        if efi.is_file():
            return LoaderBinary.from_file(major, vdir.name, efi)
    return None


def _pick_version(pairs: list[tuple[str, str]], major: str) -> str:
    suite = LOADER_SUITES[major]
    for version, where in pairs:
        if where == suite and version.split(".")[0] == major:
            return version
    raise NotFoundError(
        f"{PACKAGE} {major}: not in suite {suite} (apt knows {pairs})",
        hint="Debian moved on: update LOADER_SUITES in tests/vm/harness/packages.py",
    )


def systemd_boot(major: str) -> LoaderBinary:
    """The real systemd-boot `major` ("252", "254", "257", "262"): from the cache, else fetched with apt.

    Not thread-safe for the first fetch (apt locks its private lists): callers serialise (VmSuite does).
    """
    if major not in LOADER_SUITES:
        raise NotFoundError(f"systemd-boot {major}: not one of {', '.join(LOADER_MAJORS)}")
    root = cache_dir("systemd-boot")
    found = _cached(major, root)
    if found is not None:
        return found
    apt = private_apt()
    version = _pick_version(apt.madison(PACKAGE), major)
    with tempfile.TemporaryDirectory(prefix="bgvm-deb-") as tmp:
        deb = apt.download(PACKAGE, version, Path(tmp))
        run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")])
        vdir = root / major / version
        vdir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(tmp) / "x" / EFI_IN_DEB, vdir / "systemd-bootx64.efi.tmp")
        (vdir / "systemd-bootx64.efi.tmp").rename(vdir / "systemd-bootx64.efi")
    return LoaderBinary.from_file(major, version, vdir / "systemd-bootx64.efi")


def debian_kernel(boot: Path = Path("/boot"), modules_root: Path = Path("/lib/modules")) -> Kernel:
    """The newest `/boot/vmlinuz-*` that has a module tree (the Debian `linux-image-amd64` kernel).

    The running kernel is not used: on CI it is the cloud host's, not a Debian one with i6300esb and 9p.
    """
    candidates = []
    for vmlinuz in boot.glob("vmlinuz-*"):
        release = vmlinuz.name.removeprefix("vmlinuz-")
        if (modules_root / release / "modules.dep").is_file():
            candidates.append((release, vmlinuz))
    if not candidates:
        raise NotFoundError(
            f"{boot}: no vmlinuz-* with modules in {modules_root}",
            hint="apt-get install linux-image-amd64 (not the -cloud flavour: it lacks i6300esb and 9p)",
        )
    release, vmlinuz = max(candidates, key=lambda c: _version_key(c[0]))
    return Kernel(release=release, vmlinuz=vmlinuz, modules=modules_root / release)


def _version_key(release: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", release))
