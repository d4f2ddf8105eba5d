"""The ``mmadfer`` command. Each subcommand lives in its own module under :mod:`mmadfer.commands`.

A command module has a docstring (its first line is the help text), ``add_arguments(parser)`` and
``run(args) -> int``. Modules import their heavy dependencies inside ``run`` so that ``mmadfer --help`` loads only what
building the parser needs (docs/ARCHITECTURE.md).

Warnings that mmadfer's modules log (``logging.getLogger(__name__).warning``) are printed one line each on stderr
(:class:`StderrHandler`), whether or not anything else configured logging.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__

COMMANDS = ("demo", "predict", "train", "evaluate", "calibrate", "cv", "ablate", "learning-curve", "prepare", "synth",
            "export", "bench", "serve", "distill")


class StderrHandler(logging.Handler):
    """``warning: <message>`` on the ``sys.stderr`` of the moment a record is written (so a redirected or captured
    stderr gets it), for records of WARNING and above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr closed (a closed pipe, a finished capture): nowhere to say it
            pass


def log_to_stderr() -> None:
    """Give the ``mmadfer`` logger its stderr handler, once. Without it, a warning reached the terminal only through
    Python's last-resort handler, i.e. only while no handler was configured anywhere."""
    logger = logging.getLogger("mmadfer")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        logger.addHandler(StderrHandler())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmadfer",
        description="Audio-visual facial expression recognition in video (MMA-DFER). Runs locally; nothing is uploaded.",
    )
    parser.add_argument("--version", action="version", version=f"mmadfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"mmadfer.commands.{name.replace('-', '_')}")
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    log_to_stderr()
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for reports' provenance
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
