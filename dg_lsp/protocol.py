"""pygls' protocol, made to answer every request and to survive any input.

Out of the box pygls 2.1 drops (only logs) a request whose params do not convert into
lsprotocol types, requests that arrive after ``shutdown``, messages that are not JSON-RPC
2.0 objects, and bodies that are not JSON (it pops up "Error in server" instead): the
client waits forever. Here every request gets a JSON-RPC error with its id:

- ParseError (-32700, id null): the body is not JSON;
- InvalidRequest (-32600): not a JSON-RPC 2.0 object, a non-string method, an id that is
  neither a number nor a string (answered with id null), or any request after ``shutdown``;
- MethodNotFound (-32601): an unknown method, with or without params;
- InvalidParams (-32602): params that do not convert into the method's lsprotocol type;
- ServerNotInitialized (-32002): a request before ``initialize``.

Notification handlers no longer leak their futures (one per keystroke). Error responses
never carry a traceback (it goes to the log on stderr), and
``didChange``/``didClose`` for a document that was never opened are logged and ignored.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from types import SimpleNamespace
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol

log = logging.getLogger(__name__)

_IGNORED = SimpleNamespace(jsonrpc="dropped")  # handle_message ignores unknown versions
_ALWAYS_ALLOWED = {types.INITIALIZE, types.EXIT}  # LSP: even shutdown waits for initialize
_NEED_OPEN_DOC = {types.TEXT_DOCUMENT_DID_CHANGE, types.TEXT_DOCUMENT_DID_CLOSE}


def _valid_id(msg_id: Any) -> bool:
    return isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool)


class DgProtocol(LanguageServerProtocol):
    def _error(self, msg_id: Any, err: JsonRpcException, why: str) -> None:
        log.warning("answering %r with %s (%d): %s", msg_id, type(err).__name__, err.code, why)
        if _valid_id(msg_id):
            self._send_response(msg_id, error=err.to_response_error())
        else:  # pygls would leave the id out; JSON-RPC wants "id": null
            self._send_data({"jsonrpc": "2.0", "id": None, "error": {"code": err.code, "message": err.message}})

    def _send_response(self, msg_id, result=None, error=None):
        if error is not None and isinstance(error.data, dict) and "traceback" in error.data:
            error.data = None  # the traceback is in the log; the client gets the message
        return super()._send_response(msg_id, result, error)

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):
        """pygls files the future of every handler in ``_request_futures`` but removes only
        those of requests: the futures of notifications run by its builtin generators
        (didOpen, didChange, didClose: one per keystroke) and of async handlers they yield
        to (commands) stayed forever. Drop them when the handler is done."""
        is_request = isinstance(callback, partial) and callback.func == self._send_handler_result
        if not is_request:

            def done(future, _then=callback):
                self._request_futures.pop(msg_id, None)
                _then(future)

            callback = done
        return super()._execute_handler(msg_id, handler, callback, args, kwargs)

    def structure_message(self, data: dict[str, Any]):
        if "jsonrpc" in data and "method" in data:
            method, msg_id = data["method"], data.get("id")
            is_request = "id" in data
            if not isinstance(method, str):
                if is_request:
                    self._error(msg_id, JsonRpcInvalidRequest("method must be a string"), repr(method))
                return _IGNORED
            if is_request and not _valid_id(msg_id):
                self._error(None, JsonRpcInvalidRequest("id must be a number or a string"), repr(msg_id))
                return _IGNORED
            if self.get_message_type(method) is None and "params" not in data:
                data = {**data, "params": None}  # unknown method without params: MethodNotFound below
        try:
            return super().structure_message(data)
        except JsonRpcException:
            msg_id = data.get("id")
            if _valid_id(msg_id) and isinstance(data.get("method"), str):
                method = data["method"]
                err = self._gate(method)
                if err is None and self.get_message_type(method) is None:
                    err = JsonRpcMethodNotFound.of(method)
                elif err is None:
                    err = JsonRpcInvalidParams(f"invalid params for {method!r}")
                self._error(msg_id, err, f"params {str(data.get('params'))[:200]}")
            return _IGNORED

    def _gate(self, method: str) -> JsonRpcException | None:
        """The error for a request that may not run now, whatever its params."""
        if self._shutdown and method != types.EXIT:
            return JsonRpcInvalidRequest("server is shutting down")
        if method not in _ALWAYS_ALLOWED and getattr(self, "_workspace", None) is None:
            return JsonRpcServerNotInitialized("initialize first")
        return None

    def handle_message(self, message):
        if message is _IGNORED:
            return None
        if not hasattr(message, "jsonrpc"):  # a raw list / number / string / object without "jsonrpc"
            msg_id = message.get("id") if isinstance(message, dict) else None
            self._error(msg_id, JsonRpcInvalidRequest("not a JSON-RPC 2.0 message"), f"{message!r:.200}")
            return None
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        is_request = method is not None and msg_id is not None
        if message.jsonrpc != "2.0":
            if is_request:
                self._error(msg_id, JsonRpcInvalidRequest('jsonrpc must be "2.0"'), repr(message.jsonrpc))
            return None
        if is_request and (err := self._gate(method)) is not None:
            self._error(msg_id, err, method)
            return None
        if method in _NEED_OPEN_DOC and self._workspace is not None:
            uri = message.params.text_document.uri
            if uri not in self._workspace.text_documents:
                log.warning("%s for %s, which is not open: ignored", method, uri)
                return None
        return super().handle_message(message)

    def parse_error(self, exc: BaseException) -> None:
        """A body that is not JSON: ParseError with id null (JSON-RPC 2.0, section 5.1)."""
        self._error(None, JsonRpcParseError(f"body is not JSON: {exc}"[:300]), type(exc).__name__)


def is_parse_error(exc: BaseException) -> bool:
    return isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, RecursionError))
