"""``magtwin`` command: one sub-command per pipeline stage.

Each module ``magtwin.cli.<name>`` that defines ``register(subparsers)`` contributes a
sub-command; ``register`` adds its parser and sets ``func`` (called with the parsed
arguments, returning an exit code or None). Problems with the user's data raise
:class:`magtwin.errors.MagtwinError` and are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import magtwin.cli as _cli_pkg
from magtwin import __version__
from magtwin.errors import MagtwinError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="magtwin",
        description="Tomography-based digital twin of Nd-Fe-B magnets: FIB-SEM stack to micromagnetics.",
    )
    parser.add_argument("--version", action="version", version=f"magtwin {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(_cli_pkg.__path__), key=lambda m: m.name):
        if mod.name in ("main",) or mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"magtwin.cli.{mod.name}")
        if hasattr(module, "register"):
            module.register(sub)
    # -v/-q are accepted after the sub-command too (``magtwin ingest -q ...``).
    for name, subparser in sub.choices.items():
        subparser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                               help="more log output")
        subparser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                               help="warnings and errors only")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        rc = args.func(args)
    except MagtwinError as exc:
        print(f"magtwin {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"magtwin {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
