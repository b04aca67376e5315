"""The language server: one pygls ``LanguageServer`` subclass holding documents, settings,
the model and the worker. LSP features live one per module in ``dg_lsp.features``."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from dg_lsp import __version__
from dg_lsp.context import LanguageSpec, SyntaxDocument, registry
from dg_lsp.engine import Engine, ModelLoadError
from dg_lsp.protocol import DgProtocol, is_parse_error
from dg_lsp.settings import DEFAULTS, Settings, decode, model_key
from dg_lsp.completion_cache import CompletionCache
from dg_lsp.confidence import RecentAnswers
from dg_lsp.stats import Stats
from dg_lsp.worker import Worker

log = logging.getLogger("dg_lsp")

_LSP_BREAK = re.compile(r"\r\n|\r|\n")
_LSP_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


class LspTextDocument(TextDocument):
    """A document whose lines end only at ``\n``, ``\r\n`` and ``\r``, as LSP counts them.

    pygls splits with ``str.splitlines``, which also breaks at form feed, vertical tab,
    ``\x1c``-``\x1e``, ``\x85``, U+2028 and U+2029: every position after such a character
    would point at the wrong place, and incremental edits would land there. It also never
    reads a file from disk: only text the client sent exists.
    """

    _lines_of: str | None = None  # the source ``_lines`` / ``_starts`` were computed from
    _lines: tuple[str, ...] = ()
    _starts: list[int] = []

    @property
    def lines(self) -> tuple[str, ...]:
        """The lines with their breaks; computed once per version of the text (a 20,000-line
        document takes milliseconds to split, and every request and edit needs its lines)."""
        src = self.source
        if self._lines_of is not src:
            self._lines = tuple(_LSP_LINE.findall(src))
            self._starts, self._lines_of = _line_starts(self._lines, 0), src
        return self._lines

    def offset_at_server_position(self, server_position: Any) -> int:
        """pygls' offset (column + length of the lines before), from the line starts."""
        lines = self.lines
        row = server_position.line
        return server_position.character + (self._starts[row] if row < len(lines) else len(self.source))

    @property
    def source(self) -> str:
        return self._source if self._source is not None else ""

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        """pygls' edit, as one slice of the text instead of rewriting it line by line."""
        lines = self.lines
        rng = self._position_codec.range_from_client_units(lines, change.range)
        src = self.source
        start, end = rng.start, rng.end
        if start.line >= len(lines):  # an edit at the very end of the document
            self._source = src + change.text
            return
        if start.line > end.line:  # a reversed range: pygls leaves the text as it was
            return

        def offset(line: int, col: int) -> int:
            if line >= len(lines):
                return len(src)
            return self._starts[line] + min(col, len(lines[line]))

        a, b = offset(start.line, start.character), offset(end.line, end.character)
        new = src[:a] + change.text + src[b:]
        self._source = new
        # re-split only the lines around the edit (one more on each side, where a "\r" and a
        # "\n" may join into one break); the others keep their text and shift
        first = max(0, start.line - 1)
        last = min(len(lines), max(end.line, start.line) + 2)  # exclusive
        lo = self._starts[first]
        hi = self._starts[last] if last < len(lines) else len(src)
        delta = len(new) - len(src)
        middle = tuple(_LSP_LINE.findall(new, lo, hi + delta))
        self._lines = lines[:first] + middle + lines[last:]
        tail = self._starts[last:]
        self._starts = self._starts[:first] + _line_starts(middle, lo) + ([x + delta for x in tail] if delta else tail)
        self._lines_of = new


def _line_starts(lines: tuple[str, ...], start: int) -> list[int]:
    """Offsets of ``lines`` (with their breaks) in a text where the first begins at ``start``."""
    return list(accumulate((len(line) for line in lines[:-1]), initial=start)) if lines else []


def use_lsp_documents(workspace: Any) -> None:
    """Make ``workspace`` create ``LspTextDocument``s (called once ``initialize`` built it)."""

    def create(doc_uri, source=None, version=None, language_id=None):
        return LspTextDocument(doc_uri, source=source, version=version, language_id=language_id,
                               sync_kind=workspace._sync_kind, position_codec=workspace._position_codec)

    workspace._create_text_document = create


@dataclass
class Snapshot:
    """What a request needs of a document, taken on the event loop."""

    uri: str
    version: int | None
    revision: int  # bumped by the server on every didOpen/didChange, whatever the client's version
    text: str
    doc: TextDocument
    syntax: SyntaxDocument
    spec: LanguageSpec


class DgLanguageServer(LanguageServer):
    def __init__(self, model_override: str | None = None, device_override: str | None = None) -> None:
        super().__init__("dg-lsp", __version__, protocol_cls=DgProtocol)
        self.model_override = model_override
        self.device_override = device_override
        self.settings: Settings = self.base_settings()
        self.syntax: dict[str, SyntaxDocument] = {}
        self.revisions: dict[str, int] = {}
        self.worker = Worker()
        self.stats = Stats()
        self.completions = CompletionCache()  # proposals reused while they are typed
        self.recent = RecentAnswers()  # answers by place, for the degenerate-answer gate
        self.tuning = None  # the running dg-lsp.tune (dg_lsp.features.tune.TuneJob)
        self.engine: Engine | None = None
        self.load_error: str | None = None
        self._loaded_key: tuple[Any, ...] | None = None
        self._load_future: asyncio.Future | None = None

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        """Serve over stdio with dg-lsp's message loop (``dg_lsp.transport``)."""
        import sys
        import threading

        from pygls.io_ import StdinAsyncReader, StdoutWriter

        from dg_lsp.transport import run_stdio

        self._stop_event = threading.Event()
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            asyncio.run(run_stdio(self._stop_event, reader, self.protocol, self.report_server_error))
        except BrokenPipeError:
            log.error("the client closed the connection: shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    def report_server_error(self, error: Exception, source: Any) -> None:
        """A body that is not JSON is answered with ParseError; other errors as pygls does."""
        if is_parse_error(error):
            self.protocol.parse_error(error)
            return
        super().report_server_error(error, source)

    # ------------------------------------------------------------------ settings
    def base_settings(self) -> Settings:
        """Defaults, with the command line's --model / --device in place of the built-in ones.

        Client settings that name these keys win: they can change at run time."""
        import msgspec

        over: dict[str, Any] = {}
        if self.model_override:
            over["model"] = self.model_override
        if self.device_override:
            over["device"] = self.device_override
        return msgspec.structs.replace(DEFAULTS, **over)

    def apply_settings(self, raw: Any) -> None:
        new, problems = decode(raw, self.base_settings())
        for p in problems:
            log.warning(p)
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=p))
        self.settings = new

    # ------------------------------------------------------------------ model
    def ensure_model(self) -> asyncio.Future:
        """Load (or reload after a settings change) the model on the worker; at most once per key."""
        key = model_key(self.settings)
        if self._load_future is not None and self._loaded_key == key:
            return self._load_future
        self._loaded_key = key
        self._load_future = asyncio.ensure_future(self._load(self.settings))
        return self._load_future

    def reload_model(self) -> asyncio.Future:
        self._loaded_key = None
        return self.ensure_model()

    async def _load(self, s: Settings) -> None:
        token = str(uuid.uuid4())
        progress = bool(
            self.client_capabilities.window and self.client_capabilities.window.work_done_progress
        )
        if progress:
            try:
                await asyncio.wait_for(self.work_done_progress.create_async(token), timeout=5)
                self.work_done_progress.begin(
                    token, types.WorkDoneProgressBegin(title="dg-lsp", message="loading model", percentage=0)
                )
            except Exception as exc:  # a client may refuse the token; loading goes on
                log.info("work done progress unavailable: %s", exc)
                progress = False
        self.engine = None
        self.completions = CompletionCache()  # proposals of the previous model no longer apply
        self.recent = RecentAnswers()
        root = self.workspace.root_path if self.workspace is not None else None
        try:
            engine = await asyncio.get_running_loop().run_in_executor(
                self.worker.pool,
                lambda: _load_and_warm(s, root),
            )
        except Exception as exc:
            msg = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
            self.load_error = msg
            log.error("model failed to load: %s", msg)
            self.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error,
                    message=f"dg-lsp: model failed to load: {msg}. Completions stay empty until the "
                    "model setting is fixed or dg-lsp.reloadModel is run.",
                )
            )
        else:
            self.engine, self.load_error = engine, None
            log.info("model loaded: %s", engine.describe())
            from dg_lsp.features.memory import ensure_workspace

            ensure_workspace(self, engine)  # the workspace memory needs this model's tokenizer
            failed = getattr(engine, "tuned_error", None)
            if failed:
                self.window_show_message(types.ShowMessageParams(
                    type=types.MessageType.Warning,
                    message=f"dg-lsp: the tuned weights failed to load ({failed}); serving the base model."))
        finally:
            if progress:
                end = "model loaded" if self.engine else "model failed to load"
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=end))

    async def get_engine(self) -> Engine | None:
        fut = self.ensure_model()
        await asyncio.shield(fut)
        return self.engine

    # ------------------------------------------------------------------ documents
    def spec_for(self, doc: TextDocument) -> LanguageSpec | None:
        reg = registry()
        spec = reg.for_language_id(doc.language_id or "") if doc.language_id else None
        spec = spec or reg.for_path(doc.uri)
        if spec is None:
            return None
        if self.settings.languages and not (
            set(self.settings.languages) & ({spec.name} | set(spec.language_ids))
        ):
            return None
        return spec

    def sync_document(self, uri: str) -> None:
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            self.syntax.pop(uri, None)
            return
        spec = self.spec_for(doc)
        if spec is None:
            self.syntax.pop(uri, None)
            return
        current = self.syntax.get(uri)
        if current is None or current.spec is not spec:
            self.syntax[uri] = SyntaxDocument(spec, doc.source)
        else:
            current.update(doc.source)

    def bump_revision(self, uri: str) -> None:
        self.revisions[uri] = self.revisions.get(uri, 0) + 1

    def revision(self, uri: str) -> int:
        return self.revisions.get(uri, 0)

    def snapshot(self, uri: str) -> Snapshot | None:
        """The open document at ``uri`` with its syntax tree; None for unsupported languages.

        Raises InvalidParams for documents the client never opened (we read nothing from disk).
        """
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"document not open: {uri}")
        spec = self.spec_for(doc)
        if spec is None:
            log.info("no grammar for %s (languageId %r): empty result", uri, doc.language_id)
            return None
        if uri not in self.syntax:
            self.sync_document(uri)
        syn = self.syntax[uri]
        return Snapshot(uri, doc.version, self.revision(uri), doc.source, doc, syn, spec)

    def offset_of(self, snap: Snapshot, position: types.Position) -> int:
        """Code-point offset of an LSP position (UTF-16 or as negotiated); InvalidParams outside."""
        lines = snap.doc.lines
        if position.line < 0 or position.character < 0:
            raise JsonRpcInvalidParams(f"negative position {position}")
        if position.line > len(lines) or (position.line == len(lines) and position.character > 0):
            raise JsonRpcInvalidParams(
                f"position {position.line}:{position.character} is outside the document ({len(lines)} lines)"
            )
        if position.line < len(lines):
            line = lines[position.line].rstrip("\r\n")
            units = snap.doc.position_codec.client_num_units(line)
            if position.character > units:
                raise JsonRpcInvalidParams(
                    f"position {position.line}:{position.character} is past the end of the line ({units} units)"
                )
        if position.line == len(lines):  # the empty last line (pygls counts UTF-16 units there)
            return len(snap.text)
        return snap.doc.offset_at_position(position)

    def position_at(self, snap: Snapshot, offset: int) -> types.Position:
        """LSP position of a code-point offset (pygls' own is off at the end of a document
        without a final newline)."""
        text = snap.text
        doc = snap.doc
        codec = doc.position_codec
        if isinstance(doc, LspTextDocument) and doc.source is text and text:
            lines, starts = doc.lines, doc._starts  # cached per text: no scan of the whole document
            idx = max(0, bisect_right(starts, offset) - 1)
            start = starts[idx]
            if offset > start + len(lines[idx].rstrip("\r\n")):  # inside or after the line break
                return types.Position(line=idx + 1, character=0)
            return types.Position(line=idx, character=codec.client_num_units(text[start:offset]))
        line, start = 0, 0
        for m in _LSP_BREAK.finditer(text, 0, offset):
            line, start = line + 1, m.end()
        return types.Position(line=line, character=codec.client_num_units(text[start:offset]))

    def shutdown_worker(self) -> None:
        job = self.tuning
        if job is not None and job.proc is not None and job.proc.returncode is None:
            job.state = "cancelled"
            job.proc.kill()  # a tune does not outlive its server
        from dg_lsp.features.memory import state

        state(self).stop()
        self.worker.shutdown()


def tuned_weights(s: Settings, root: str | None) -> tuple[str | None, dict | None]:
    """(directory, manifest) of the tuned weights to serve (``tuned`` setting), or (None, None)."""
    from dg_lsp.engine.loader import resolve_model_dir
    from dg_lsp.tune import read_manifest, tuned_dir

    if s.tuned == "off":
        return None, None
    if s.tuned != "auto":
        return s.tuned, read_manifest(s.tuned)
    if not root:
        return None, None
    d = tuned_dir(root)
    manifest = read_manifest(d)
    try:
        base = str(resolve_model_dir(s.model).resolve())
    except Exception:  # the base model's own error is reported when it loads
        return None, None
    if manifest is None or manifest.get("base") != base:
        return None, None  # none for this workspace, or tuned from another model
    return str(d), manifest


def _load_and_warm(s: Settings, root: str | None = None) -> Engine:
    def load(model: str | None) -> Engine:
        return Engine.load(model, device=s.device, dtype=s.dtype, trust_remote_code=s.trust_remote_code,
                           layout=s.prompt_layout, threads=s.threads)

    path, manifest = tuned_weights(s, root)
    engine, error = None, None
    if path is not None:
        try:
            engine = load(path)
        except Exception as exc:  # a bad tuned file never leaves the server without a model
            error = f"{path}: {exc}"
            log.error("tuned weights failed to load, serving the base model: %s", error)
    if engine is None:
        engine = load(s.model)
    served = path is not None and error is None
    engine.tuned_path = path if served else None  # for dg-lsp.status and doctor
    engine.tuned = manifest if served else None
    engine.tuned_error = error
    log.info("warm-up infill took %.0f ms", engine.warmup())
    return engine


def create_server(model: str | None = None, device: str | None = None) -> DgLanguageServer:
    server = DgLanguageServer(model_override=model, device_override=device)
    from dg_lsp.features import register_all

    register_all(server)
    return server
