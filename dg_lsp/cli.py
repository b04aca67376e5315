"""Command line: ``dg-lsp [--stdio | --tcp HOST:PORT]``, ``dg-lsp complete``, ``dg-lsp doctor``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("pygls", "transformers", "torch", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # transformers' own logging is quietened when it is imported (engine.core.quiet_transformers):
    # importing it here would cost seconds of start-up even when the fast path never needs it


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dg-lsp", description="Language server: code infill with a local diffusion model")
    ap.add_argument("--version", action="store_true", help="print the version and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    common.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps (default: auto)")
    common.add_argument("--log-file", help="write logs here instead of stderr")
    common.add_argument("--log-level", default="info", help="debug, info, warning, error")
    sub = ap.add_subparsers(dest="command")
    serve = sub.add_parser("serve", parents=[common], help="run the language server (the default)")
    for p in (ap, serve):
        p.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
        p.add_argument("--tcp", metavar="HOST:PORT", help="listen for one LSP client on HOST:PORT")
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--device", help=argparse.SUPPRESS)
    ap.add_argument("--log-file", help=argparse.SUPPRESS)
    ap.add_argument("--log-level", default="info", help=argparse.SUPPRESS)
    comp = sub.add_parser("complete", parents=[common], help="print the infill at FILE:LINE:CHARACTER")
    comp.add_argument("file", type=Path)
    comp.add_argument("--line", type=int, required=True, help="0-based line")
    comp.add_argument("--character", type=int, required=True, help="0-based UTF-16 column, as in LSP")
    comp.add_argument("--language", help="languageId (default: from the file extension)")
    comp.add_argument("--json", action="store_true", help="print a JSON record with timings")
    comp.add_argument("--raw", action="store_true", help="print the raw middle, before post-processing")
    sub.add_parser("doctor", parents=[common], help="check model, device, dtype and grammars")
    tune = sub.add_parser("tune", parents=[common], help="fine-tune the model on a workspace's own code (CPU)")
    tune.add_argument("path", nargs="?", default=".", type=Path, help="the workspace (default: .)")
    tune.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget (default 10)")
    tune.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a core stays free)")
    tune.add_argument("--max-mb", type=float, default=20.0, help="most source read (default 20 MB)")
    tune.add_argument("--out", type=Path, help="where the tuned checkpoint goes (default: the user cache, by workspace)")
    tune.add_argument("--json", action="store_true", help="progress as JSON lines on stdout")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        from dg_lsp import __version__

        print(__version__)
        return 0
    setup_logging(args.log_level, args.log_file)
    if args.command == "complete":
        return complete(args)
    if args.command == "doctor":
        return doctor(args)
    if args.command == "tune":
        return tune(args)
    from dg_lsp.server import create_server

    server = create_server(model=args.model, device=args.device)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io(sys.stdin.buffer, _protocol_stdout())
    return 0


def _protocol_stdout():
    """A private handle on stdout for the protocol; fd 1 and ``sys.stdout`` then point at
    stderr, so a stray ``print`` or a C library's write can never corrupt the LSP stream."""
    out = os.fdopen(os.dup(1), "wb")
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _utf16_to_index(line: str, character: int) -> int:
    units = 0
    for i, ch in enumerate(line):
        if units >= character:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def complete(args: argparse.Namespace) -> int:
    from dg_lsp.context import SyntaxDocument, registry
    from dg_lsp.engine import Engine, ModelLoadError
    from dg_lsp.service import propose
    from dg_lsp.settings import DEFAULTS

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"dg-lsp: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    reg = registry()
    spec = reg.for_language_id(args.language) if args.language else reg.for_path(str(args.file))
    if spec is None:
        print(f"dg-lsp: no grammar for {args.file} (use --language)", file=sys.stderr)
        return 2
    lines = text.split("\n")
    if not 0 <= args.line < len(lines):
        print(f"dg-lsp: line {args.line} is outside {args.file} ({len(lines)} lines)", file=sys.stderr)
        return 2
    offset = sum(len(ln) + 1 for ln in lines[: args.line]) + _utf16_to_index(lines[args.line], args.character)
    try:
        engine = Engine.load(args.model, device=args.device or "auto")
    except ModelLoadError as exc:
        print(f"dg-lsp: {exc}", file=sys.stderr)
        return 1
    prop = propose(engine, spec, SyntaxDocument(spec, text), offset, DEFAULTS, invoked=True)
    raw = prop.result.text if prop.result else ""
    if args.json:
        print(json.dumps({"completion": prop.text, "raw": raw, "mode": prop.mode, "replace": prop.replace,
                          "reason": prop.reason, "timings_ms": prop.timings,
                          "steps": prop.result.steps if prop.result else 0,
                          # "draft": the causal draft answered (``draft: "answer"``), "canvas": denoising
                          "decoder": "draft" if prop.result and prop.result.drafted else "canvas",
                          "confidence": round(prop.confidence, 4)}))
    else:
        print(raw if args.raw else prop.text)
    return 0


def tune(args: argparse.Namespace) -> int:
    import signal

    from dg_lsp.tune import TuneConfig
    from dg_lsp.tune import tune as run_tune

    stop = {"asked": False}

    def ask_stop(*_: object) -> None:  # SIGINT / SIGTERM: end early and still save
        stop["asked"] = True

    signal.signal(signal.SIGTERM, ask_stop)
    signal.signal(signal.SIGINT, ask_stop)
    if not args.path.is_dir():
        print(f"dg-lsp tune: {args.path} is not a directory", file=sys.stderr)
        return 2
    cfg = TuneConfig(minutes=args.minutes, threads=args.threads, max_mb=args.max_mb)
    run_tune(args.path, args.model, cfg, args.out, json_out=args.json, should_stop=lambda: stop["asked"])
    return 0


def doctor(args: argparse.Namespace) -> int:
    import platform

    import torch

    from dg_lsp import __version__
    from dg_lsp.context import QUERY_NAMES, grammars_dir, registry
    from dg_lsp.engine import Engine, ModelLoadError

    ok = True
    print(f"dg-lsp {__version__}, Python {platform.python_version()}, torch {torch.__version__}")
    print(f"CUDA available: {torch.cuda.is_available()}; CPU threads: {torch.get_num_threads()}")
    print(f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')}")
    print(f"grammars: {grammars_dir()}")
    for spec in registry().all():
        try:
            spec.language()
            queries = [q for q in QUERY_NAMES if spec.query(q) is not None]
            print(f"  {spec.name:<11} ok   queries: {', '.join(queries)}")
        except Exception as exc:
            ok = False
            print(f"  {spec.name:<11} FAIL {exc}")
    try:
        engine = Engine.load(args.model, device=args.device or "auto")
    except ModelLoadError as exc:
        print(f"model: FAIL {exc}")
        return 1
    d = engine.describe()
    print(f"model: {d['path']}")
    products = f" (matrix products {d['matmul_dtype']})" if d["matmul_dtype"] != d["dtype"] else ""
    print(f"  device {d['device']}, dtype {d['dtype']}{products}, {d['parameters'] / 1e6:.1f}M parameters, "
          f"layout {d['layout']}, canvas {d['canvas_length']}, vocab {d['vocab_size']}, "
          f"prompt budget {d['context_tokens'] or 'not in config.json'}")
    res = engine.infill("def add(a, b):\n    return ", "\n", seed=0)
    how = "the causal draft (draft: answer)" if res.drafted else f"{res.steps} steps"
    print(f"  test infill: {how}, {res.timings['total']:.0f} ms, {len(res.token_ids)} tokens")
    from dg_lsp.engine.holes import operations

    for op, answer in operations(engine).items():
        print(f"  {op.replace('_', ' ')}: {answer}")
    gate = engine.gate
    print("  show/withhold gate: " + (f"learned (gate.json, {gate.meta.get('examples', '?')} dev answers): "
                                      "minConfidence reads as the probability of a useful suggestion"
                                      if gate is not None else "the model's own confidence (no gate.json)"))
    print("  token memory: on by default (memory: auto): the open document, other open documents, "
          "the workspace's source files (docs/memory.md)")
    import msgspec

    from dg_lsp.server import tuned_weights
    from dg_lsp.settings import DEFAULTS

    path, manifest = tuned_weights(msgspec.structs.replace(DEFAULTS, model=args.model), os.getcwd())
    if path is None:
        print("tuned weights for this folder: none (the base model serves; dg-lsp tune makes them)")
    else:
        try:
            Engine.load(path, device=args.device or "auto")
            state = "ok"
        except ModelLoadError as exc:
            ok, state = False, f"FAIL {exc} (the server falls back to the base model)"
        print(f"tuned weights for this folder: {path} ({manifest.get('files')} files, {manifest.get('steps')} steps, "
              f"{manifest.get('created')}): {state}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
