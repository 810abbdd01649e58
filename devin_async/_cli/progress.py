"""The status line of a wait, on stderr."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Callable
from typing import TextIO

from .._models import Session
from .render import fit, is_tty, render_progress, say

_CLEAR_LINE = "\r\x1b[2K"


class Progress:
    """The status line of a wait, on ``stream`` (stderr).

    On a terminal the line is rewritten in place and its elapsed time ticks; otherwise
    each change is one plain line.
    """

    def __init__(
        self,
        session_id: str,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id = session_id
        self.session: Session | None = None
        self.tty = is_tty(stream) if tty is None else tty
        self._stream = stream
        self._clock = clock
        self._start = clock()
        self._shown = False

    def update(self, session: Session) -> None:
        """Show a new state of the session."""
        self.session = session
        self.draw()

    def draw(self) -> None:
        """Write the current line (in place on a terminal)."""
        text = render_progress(self.session_id, self.session, self._clock() - self._start)
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            self._stream.write(_CLEAR_LINE + fit(text, width))
            self._shown = True
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def clear(self) -> None:
        """Erase the line on a terminal, so that other output starts on a clean line."""
        if self._shown:
            self._stream.write(_CLEAR_LINE)
            self._stream.flush()
            self._shown = False

    def interject(self, text: str) -> None:
        """Print ``text`` on stdout without mixing it into the status line."""
        self.clear()
        say(text)
        if self.tty:
            self.draw()

    @contextlib.asynccontextmanager
    async def running(self, interval: float = 1.0) -> AsyncIterator[Progress]:
        """Draw the line, keep its elapsed time ticking on a terminal, and erase it at the end."""
        if self.tty:
            self.draw()
        ticker = asyncio.create_task(self._tick(interval)) if self.tty else None
        try:
            yield self
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self.clear()

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.draw()
