"""The one user-facing error type and the exit codes every command shares."""

from __future__ import annotations

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
