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
    # stopped cleanly before the end by the operator's controls (pairs suspended or waiting
    # for their schedule, a --max-items/--max-mb cap reached); nothing failed
    PAUSED = 8
    INTERRUPTED = 130


HELP = """\b
Exit codes:
  0    every selected item is in the target
  1    the job ran; some items failed or are unknown, or some pairs failed (see the report;
       verify: a pair could not be compared)
  2    bad command line
  3    configuration error, a --pair or --wave the job does not have, an unwritable
       report, --log-file or --json-output, or a state store of another job (nothing
       was sent)
  4    authentication or permission refused for every pair
  5    fatal: state store unusable, disk full, the emulator would not start, every pair failed
  6    verify found missing, extra or misplaced items (stale copies with --content)
  7    another run of this job is in progress (its lock is held)
  8    paused: stopped cleanly by the operator's controls (pairs suspended or waiting
       for their schedule, a cap reached); nothing failed; resume / run again to go on
  130  interrupted (Ctrl-C / SIGTERM); run again to finish
"""
