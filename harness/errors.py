"""The one error type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

import difflib


class HarnessError(Exception):
    """A problem the user can fix; its message says what to do. `code` is the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(HarnessError):
    """The user stopped the bench (Ctrl-C or SIGTERM); what was recorded is kept."""

    def __init__(self, message: str = "interrupted by the user; run again with --resume (make bench RESUME=1) to finish") -> None:
        super().__init__(message, code=130)


def unknown(kind: str, name: str, known: list[str], hint: str = "") -> HarnessError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    did = f"; did you mean {close[0]!r}?" if close else ""
    return HarnessError(f"unknown {kind} {name!r}{did} Known: {', '.join(known)}.{(' ' + hint) if hint else ''}")
