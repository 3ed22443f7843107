"""The floor under `bootguard initrd`: its file work alone, with no bootguard code.

A helper of `bench/cli_startup.py` (not a benchmark of its own: `make bench` runs bench/*.py), which
runs it with the packaged interpreter's initrd flags (`-I -S`, from its .pyc) on the same host tree as
the real step, timed against the same bare interpreter. It does what one writing step does to the
file system (strace of `bootguard initrd` on that tree) and nothing else: read the loader's EFI
variables, list the entries, read loader.conf and both state slots (decoded with `_json`, as
bootguard does), read the watchdog's bootstatus, list pstore, take the state lock, write the new slot
(temp file, fsync, rename, directory fsync) and append the step's event lines (one write, fsync).
Its ratio shows how much of the ≤ 1.5× budget of issue 13 is left for everything bootguard itself
does: parsing, deciding, and loading the code that does it.

    python3 -I -S bench/support/initrd_floor.py --esp E --efivars V --state-dir S \\
        --watchdog-sysfs W --pstore P --variables LoaderInfo-GUID,...
"""

import _json  # what bootguard.model.jsoncodec decodes with
import os
import sys

READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Context:
    """What `_json.make_scanner` reads from a JSONDecoder (json.loads' defaults)."""

    object_hook = object_pairs_hook = None
    parse_float, parse_int, strict = float, int, True
    parse_constant = {"NaN": float("nan")}.__getitem__


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, READ)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


def main(argv: list[str]) -> None:
    args = dict(zip(argv[::2], argv[1::2], strict=True))
    esp, efivars, state = args["--esp"], args["--efivars"], args["--state-dir"]
    for name in args["--variables"].split(","):  # bootguard.seams.efivars' LOADER_VARIABLES, named
        _read(f"{efivars}/{name}")
    entries = sorted(os.listdir(f"{esp}/loader/entries"))
    _read(f"{esp}/loader/loader.conf")
    slots = [_read(f"{state}/state.{slot}.json") for slot in "ab"]
    scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # typeshed wants a JSONDecoder
    for data in slots:  # a slot is an envelope line, then the state document
        if data:
            for part in data.decode().split("\n", 1):
                scan(part, 0)
    _read(f"{args['--watchdog-sysfs']}/watchdog0/bootstatus")
    os.listdir(args["--pstore"])
    os.makedirs(state, exist_ok=True)
    lock = os.open(f"{state}/lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    body = (b"".join(s for s in slots if s) or b"{}")[:4096]
    tmp = f"{state}/.state.a.json.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.write(fd, body)
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, f"{state}/floor.json")
    dfd = os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fsync(dfd)
    os.close(dfd)
    line = f'{{"kind": "floor", "entries": {len(entries)}}}\n'.encode()
    fd = os.open(f"{state}/floor.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.write(fd, line)
    os.fsync(fd)
    os.close(fd)
    os.close(lock)


if __name__ == "__main__":
    main(sys.argv[1:])
