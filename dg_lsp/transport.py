"""The stdio message loop: pygls' ``run_async`` made to survive bad framing.

pygls' loop trusts every ``Content-Length``: a header of 10**12 makes it allocate that
much and die, and after a frame with a wrong length it loses the next message too (its
header line no longer starts at a line start). This loop finds a ``Content-Length``
header anywhere in a line (so junk before a header is skipped), refuses lengths over
``MAX_BODY`` (answering ParseError), and keeps going after any error in a message.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any, Callable

from dg_lsp.protocol import is_parse_error

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
_LENGTH = re.compile(rb"Content-Length:[ \t]*(\d+)[ \t]*\r?\n$", re.IGNORECASE)


async def run_stdio(stop: threading.Event, reader: Any, protocol: Any, on_error: Callable[[Exception, Any], None]) -> None:
    length: int | None = None
    while not stop.is_set():
        line = await reader.readline()
        if not line:
            break  # EOF: the client went away
        if line.strip():
            m = _LENGTH.search(line)
            if m:
                length = int(m.group(1))  # the latest Content-Length wins
            continue  # another header (Content-Type) or junk between messages
        if length is None:
            continue
        n, length = length, None
        if n > MAX_BODY:
            log.error("Content-Length %d is over the %d byte limit: frame skipped", n, MAX_BODY)
            protocol.parse_error(ValueError(f"Content-Length {n} is over the limit of {MAX_BODY} bytes"))
            continue
        body = await reader.readexactly(n) if n else b""
        if len(body) < n:
            break  # EOF in the middle of a body
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
            protocol.handle_message(message)
        except Exception as exc:  # one bad message never stops the loop
            if not is_parse_error(exc):
                log.exception("unable to handle a message")
            on_error(exc, None)
