"""The ``liequiv`` command line."""

from __future__ import annotations

import argparse

from liequiv import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liequiv", description=__doc__)
    parser.add_argument("--version", action="version", version=f"liequiv {__version__}")
    parser.add_subparsers(dest="command", metavar="command")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
    return 0
