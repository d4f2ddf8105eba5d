"""Command-line subcommands of ``mmadfer``; see :mod:`mmadfer.cli`."""
