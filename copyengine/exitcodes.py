"""Process exit codes (documented in the README)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ITEMS_FAILED = 1  # the job ran; some items could not be copied
    USAGE = 2  # click's own code for a bad command line
    CONFIG = 3  # the configuration is invalid; nothing was sent
    AUTH = 4  # authentication or permission refused
    FATAL = 5  # the job could not go on (state, disk, service)
    VERIFY_MISMATCH = 6  # verify found missing or extra items
    LOCKED = 7  # another run of the same job is in progress (the state's lock is held)
    INTERRUPTED = 130
