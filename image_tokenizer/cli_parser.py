"""The argument parser the three CLIs share (`cm3-data`, `cm3-train`, `cm3-generate`): a usage mistake is one
line, exit 2, naming the closest flag.

It lives here, beside `version`, because image_tokenizer is the one package both pipeline/ and model/ may
import (the layout keeps those two apart); it needs the standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import sys


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes are one line (exit 2), not the whole usage, and a misspelt flag is named with the
    closest known one even where argparse would first complain that the flag it stood for is missing."""

    passes_flags_on = False  # `cm3-data run` passes other flags to Beam, which checks them (unknown_flags)

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def known_flags(self) -> list[str]:
        return [flag for action in self._actions for flag in action.option_strings]

    def misspelt(self, argv: list[str]) -> list[str]:
        """One line per --flag in `argv` that is neither a known flag nor an abbreviation of one (a
        subcommand's flags checked by its own parser)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for i, word in enumerate(argv):
                    if word in action.choices:
                        return action.choices[word].misspelt(argv[i + 1 :])
        known = self.known_flags()
        lines = []
        for arg in argv:
            if arg == "--":
                break
            flag = arg.split("=", 1)[0]
            if not flag.startswith("--") or any(option.startswith(flag) for option in known):
                continue
            close = difflib.get_close_matches(flag, known, n=1)
            lines.append(f"unknown option {flag}" + (f" (did you mean {close[0]}?)" if close else ""))
        return lines

    def error(self, message: str) -> None:  # type: ignore[override]
        lines = [] if self.passes_flags_on else self.misspelt(getattr(self, "_argv", []))
        self.exit(2, f"{self.prog}: {'; '.join(lines) or message} (see {self.prog} --help)\n")
