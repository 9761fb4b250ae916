"""A progress bar for long runs: tqdm when installed, a plain line on stderr otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


class _PlainBar:
    """Prints ``desc: n/total`` at most twice a second; enough where tqdm is missing."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self._last = 0.0
        self._postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= 0.5 or self.n >= self.total:
            self._last = now
            sys.stderr.write(f"\r{self.desc}: {self.n}/{self.total} {self._postfix}")
            sys.stderr.flush()

    def set_postfix_str(self, text: str) -> None:
        self._postfix = text

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str = "", enabled: bool = True) -> Any:
    """An object with ``update(n)``, ``set_postfix_str``, ``set_description`` and ``close``."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainBar(total, desc)
    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False)
