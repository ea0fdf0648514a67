"""Exit statuses and the user-error exception shared by the ``lanes`` subcommands."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2


class UserError(Exception):
    """A problem the user can fix (bad argument, unreadable file, invalid YAML): printed, exit status 2."""
