"""Shared set-up for the scripts Snakemake calls: log to the rule's log file, and turn
magtwin errors into one clear line (and a non-zero exit) instead of a traceback."""

from __future__ import annotations

import contextlib
import logging
import sys

from magtwin.errors import MagtwinError


@contextlib.contextmanager
def rule_logging(snakemake):
    """Route logging to ``snakemake.log[0]`` (if any) and exit 1 on a MagtwinError."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        yield
    except MagtwinError as exc:
        logging.getLogger("magtwin").error("%s", exc)
        print(f"magtwin {snakemake.rule}: error: {exc}", file=sys.stderr)
        sys.exit(1)
