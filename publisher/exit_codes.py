"""What ``kiwoom-publisher``'s exit status means, for ``kiwoom-publisher supervise`` and Windows Task Scheduler.

The numbers are part of the interface (docs: "Unattended runs"); a supervisor restarts on anything but
:attr:`ExitCode.OK` and :attr:`ExitCode.CONFIG`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    #: Stopped as asked (a signal, the window closed, ``--duration`` elapsed) with every ranking written.
    OK = 0
    #: Stopped with rankings Redis never got, or a one-shot replay that could not run: look at the log.
    UNSENT = 1
    #: Bad configuration or arguments (argparse uses 2 too): fix the config; a restart fails the same way.
    CONFIG = 2
    #: Restart me: Kiwoom's version update (-102, 버전처리) or logins refused too often (-100). sysexits'
    #: EX_TEMPFAIL, "a temporary failure; the user is invited to retry".
    RESTART = 75

    @property
    def restartable(self) -> bool:
        """Whether a supervisor should start the publisher again after this status."""
        return self not in (ExitCode.OK, ExitCode.CONFIG)


def should_restart(status: int) -> bool:
    """True for every exit status but OK and CONFIG, including crashes and signals (negative on POSIX)."""
    return status not in (ExitCode.OK, ExitCode.CONFIG)
