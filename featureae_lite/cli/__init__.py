"""The ``featureae-lite`` command line: synth, train, evaluate, benchmark, fetch-real, transfer, curves,
notebooks, assignments, main.

:mod:`~featureae_lite.cli.parser` defines the commands and options, :mod:`~featureae_lite.cli.commands`
what each does; :func:`main` runs one and turns bad input (:class:`~featureae_lite.core.errors.InputError`,
an unusable file) into one line and exit status 2.
"""

from __future__ import annotations

import logging
import signal
import sys

from featureae_lite.cli.parser import build_parser
from featureae_lite.core.errors import InputError
from featureae_lite.core.interrupts import Terminated, sigterm_as_interrupt

__all__ = ["build_parser", "main"]


class _Console(logging.Handler):
    """The package's log as the command's output: INFO on stdout, warnings and errors on stderr, each
    record one message (the streams are looked up per record, so redirections apply)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr if record.levelno >= logging.WARNING else sys.stdout)
        except Exception:
            self.handleError(record)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error naming the option (2)
        return int(stop.code or 0)
    package_log = logging.getLogger("featureae_lite")
    console, saved = _Console(), (package_log.level, package_log.propagate)
    package_log.addHandler(console)
    package_log.setLevel(logging.INFO)
    package_log.propagate = False
    try:
        with sigterm_as_interrupt():
            return args.func(args)
    except (InputError, OSError) as err:  # bad input or an unusable file: one line, exit 2; other
        # errors (a bug in the package, numpy or torch) keep their traceback
        if args.debug:
            raise
        print(f"featureae-lite {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C (exit 130) or SIGTERM (exit 143)
        how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        print(f"featureae-lite {args.command}: {how}; finished files are complete, "
              "unfinished ones were not written", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 130
    finally:
        package_log.removeHandler(console)
        package_log.level, package_log.propagate = saved
