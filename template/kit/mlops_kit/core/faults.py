"""Faults of the machine, not of the code: one line that names the broken thing and the mend.

A full disk or a damaged tracking store surfaces deep inside MLflow, SQLAlchemy or
pandas, as a chain of tracebacks that hide the one fact that matters. ``explain``
finds that fact in an exception's chain; ``stages.run`` prints it instead of the
tracebacks. Anything else is a bug and keeps its traceback.

Only the standard library is imported: this module is loaded when a stage fails.
"""

import errno
import sqlite3

# No room to write: the device is full, a quota is reached, or the file size limit
# (``ulimit -f``) is.
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# What SQLite says when it cannot write for lack of room.
SQLITE_FULL = ("database or disk is full",)
# What SQLite says about a file that is not, or no longer, a database.
SQLITE_DAMAGED = ("file is not a database", "database disk image is malformed")


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it was raised from or while handling, once each."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def no_room_line(where: str, error: BaseException) -> str:
    """The line for a write that found no room."""
    target = getattr(error, "filename", None)
    writing = f" writing {target}" if target else ""
    return (
        f"{where}: no space left on the device{writing} ({error}): free some space "
        "(df -h .) and run make pipeline again; the champion in models/champion/ is "
        "unchanged and no model was registered"
    )


def damaged_store_line(store: str, problem: str) -> str:
    """The line for a tracking store SQLite cannot read."""
    return (
        f"{store} is not a readable MLflow store ({problem}): restore it from a backup, "
        f"or move it aside (mv {store} {store}.damaged) and run "
        "make pipeline DVC_FLAGS=--force to start a new one (models/champion/ keeps serving)"
    )


def explain(error: BaseException, where: str, store: str = "mlflow.db") -> str | None:
    """One line for a fault of the machine found in ``error``'s chain, or None for a bug.

    ``where`` names the command or stage that failed; ``store`` the tracking store.
    """
    for link in chain(error):
        if isinstance(link, OSError) and link.errno in NO_ROOM:
            return no_room_line(where, link)
        if isinstance(link, sqlite3.DatabaseError):
            text = str(link)
            if any(words in text for words in SQLITE_FULL):
                return no_room_line(where, link)
            if any(words in text for words in SQLITE_DAMAGED):
                return damaged_store_line(store, text)
    return None
