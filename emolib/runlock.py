"""One pipeline run per reports folder: an fcntl lock on `REPORTS/.lock`.

    python -m emolib.runlock REPORTS [--what "make all"] -- COMMAND [ARGS...]

takes an exclusive `flock` on `REPORTS/.lock` without waiting, writes who holds it
(pid, host, start time, what) into the file, removes the temporary files an
interrupted run may have left under REPORTS (see `stale_temp_files`), then *execs*
COMMAND, which inherits the locked file descriptor: the lock is held for as long as
COMMAND or any child that kept the descriptor (make's recipes: papermill) runs. When
the lock is taken it prints who holds it and exits with status 75 (EX_TEMPFAIL)
without touching anything.

The kernel releases an flock when the last descriptor on it is closed, so a run that
is killed (even with SIGKILL) never leaves a stale lock: the next run takes it and
overwrites the holder information. The Makefile runs every target that writes
REPORTS under this lock (see its "pipeline" section); the inner make sees
EMOLIB_RUNLOCK set and does the work, `make -j` included.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

LOCK_NAME = ".lock"
ENV_VAR = "EMOLIB_RUNLOCK"  # set for COMMAND: the lock file it runs under
EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later


class LockedError(RuntimeError):
    """REPORTS is in use by another run; the message says by whom."""


def holder_info(lock_path: str | Path) -> dict:
    """What the lock file says about its holder ({} when empty or unreadable)."""
    try:
        return json.loads(Path(lock_path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(reports: str | Path, info: dict) -> str:
    what = info.get("what") or "run"
    pid = info.get("pid", "?")
    host = info.get("host")
    started = info.get("started", "")
    try:
        when = _dt.datetime.fromisoformat(started)
        started = when.strftime("%H:%M") if when.date() == _dt.date.today() else when.strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        started = started or "at an unknown time"
    where = f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
    return f"{reports}/ is in use by another {what} ({where}, started {started}); wait for it or use REPORTS=other_dir"


def acquire(reports: str | Path, what: str = "run") -> int:
    """Take the lock on REPORTS/.lock and record the holder; returns the open descriptor.

    Raises LockedError at once when another process holds it. The lock lasts until the
    descriptor (and every inherited copy) is closed, or the process dies.
    """
    reports = Path(reports)
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedError(describe_holder(str(reports).rstrip("/") or "/", holder_info(path))) from None
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "what": what,
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "cwd": os.getcwd(),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return fd


def stale_temp_files(reports: str | Path) -> list[Path]:
    """Temporary files a killed run can leave under REPORTS (only safe to delete while holding the lock).

    `.tmp-*` (the Makefile's executed notebooks before their `mv`) and `.<name>.tmp-*`
    (`emolib.runinfo.atomic_path`, every other artifact before its `os.replace`).
    """
    reports = Path(reports)
    if not reports.is_dir():
        return []
    return sorted(p for p in reports.rglob(".*") if p.is_file() and (p.name.startswith(".tmp-") or ".tmp-" in p.name))


def clean_stale(reports: str | Path) -> list[Path]:
    removed = []
    for p in stale_temp_files(reports):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: python -m emolib.runlock REPORTS [--what TEXT] -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m emolib.runlock")
    parser.add_argument("reports")
    parser.add_argument("--what", default="run", help="what holds the lock, for the message ('make all')")
    args = parser.parse_args(argv[:cut])
    command = argv[cut + 1 :]
    if not command:
        parser.error("no COMMAND after --")
    try:
        fd = acquire(args.reports, args.what)
    except LockedError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_LOCKED
    removed = clean_stale(args.reports)
    if removed:
        print(f"removed {len(removed)} temporary file(s) left by an interrupted run under {args.reports}/", flush=True)
    os.set_inheritable(fd, True)
    os.environ[ENV_VAR] = os.path.abspath(os.path.join(args.reports, LOCK_NAME))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"error: cannot run {command[0]}: {e}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    raise SystemExit(main())
