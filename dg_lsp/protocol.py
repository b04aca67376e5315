"""pygls' protocol, made to answer every request.

Out of the box pygls 2.1 drops (only logs) a request whose params do not convert into
lsprotocol types, and requests that arrive after ``shutdown``: the client waits forever.
Here they get a JSON-RPC error with the request's id: InvalidParams (-32602), or
InvalidRequest (-32600) after shutdown; requests before ``initialize`` get
ServerNotInitialized (-32002).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol

log = logging.getLogger(__name__)

_IGNORED = SimpleNamespace(jsonrpc="dropped")  # handle_message ignores unknown versions
_ALWAYS_ALLOWED = {types.INITIALIZE, types.EXIT, types.SHUTDOWN}


class DgProtocol(LanguageServerProtocol):
    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            msg_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(msg_id, (int, str)) and "method" in data:
                detail = f"invalid params for {data.get('method')!r}"
                err = JsonRpcInvalidParams(detail) if isinstance(exc, JsonRpcInvalidParams) else exc
                log.warning("answering request %r with %s: %s", msg_id, type(err).__name__, detail)
                self._send_response(msg_id, error=err.to_response_error())
            return _IGNORED

    def handle_message(self, message):
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        is_request = method is not None and msg_id is not None
        if is_request and self._shutdown and method != types.EXIT:
            self._send_response(msg_id, error=JsonRpcInvalidRequest("server is shutting down").to_response_error())
            return None
        if is_request and method not in _ALWAYS_ALLOWED and getattr(self, "_workspace", None) is None:
            self._send_response(
                msg_id, error=JsonRpcServerNotInitialized("initialize first").to_response_error()
            )
            return None
        return super().handle_message(message)
