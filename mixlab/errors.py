"""The one user-facing error type and the exit codes every command shares."""

from __future__ import annotations

import errno
import re

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


class MixlabError(Exception):
    """A problem the user can fix; printed without a traceback.

    ``exit_code`` is 2 for a wrong recipe/config/argument (nothing was done) and 1 for a run that failed.
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(MixlabError):
    """A recipe or config is wrong; raised before any work starts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class RunError(MixlabError):
    """A run could not finish for a reason outside the code (input, disk, an `on_error: fail` policy)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_RUN_FAILED)


STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                  errno.EPERM: "operation not permitted"}
"""The OSErrors a user fixes by freeing space or choosing another place to write, and how each is said."""

_ERRNO_IN_TEXT = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)


def storage_problem(err: BaseException) -> str | None:
    """One line for a full, read-only or forbidden filesystem (``path: read-only file system``), or None for any
    other error. Understands Arrow's errors too, which carry the errno only in their text."""
    if not isinstance(err, OSError):
        return None
    code = err.errno
    if code is None and (m := _ERRNO_IN_TEXT.search(str(err))):
        code = int(m.group(1))
    if code not in STORAGE_ERRNOS:
        return None
    return f"{err.filename}: {STORAGE_ERRNOS[code]}" if err.filename else STORAGE_ERRNOS[code]
