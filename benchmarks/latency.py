"""Latency benchmark: replay typing against the real server, and compare decoders side by side.

    python benchmarks/latency.py [--model DIR] [--device cpu] [--out docs/bench/latency.json]

1. Typing replay (end to end, over stdio with a real LSP client): open real source files
   (a small one and 2,000+ line ones), delete a line, retype it one character per didChange
   (``--keystroke-ms`` apart) and ask for an inline completion at each pause (after a space or
   punctuation, as an editor's debounce would). Reports p50/p95/p99, per-phase medians from the
   server, denoising steps, tokens per forward, prompt-cache reuse, cold start to the first
   completion and the server's peak RSS.
2. Side by side, in this process, on the same prompts (the one the server cuts at a cursor in
   ``argparse.py`` with its default budget, and a long ~800-token one); our engine at its
   defaults, each baseline at the best of float32 / bfloat16 and 1 / all threads:
   a. our engine vs transformers' ``DiffusionGemmaForBlockDiffusion.generate()`` on the same
      checkpoint and the same step budget (ratio of wall times, from an empty prompt cache);
   b. our engine vs autoregressive decoding with a Gemma causal LM of the same width, depth and
      vocabulary (random weights, KV cache), producing the same number of tokens: tokens/s for
      middles of 8, 32 and 128 tokens, cold (prompt encode / prefill included on both sides)
      and decode only (our prompt cached; autoregressive per-token time past the first token).

Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


def source_files(huge: bool = False) -> list[tuple[str, Path]]:
    std = Path(sysconfig.get_paths()["stdlib"])
    picks = [("small", std / "bisect.py"), ("large", std / "argparse.py"), ("large", std / "typing.py")]
    if huge:
        picks.append(("huge", huge_file()))
    return [(k, p) for k, p in picks if p.exists()]


def huge_file(lines: int = 20_000) -> Path:
    """A real-code Python file of ``lines`` lines: standard-library modules one after another,
    ending with the small file (``bisect.py``), whose lines are the ones retyped in it, so that
    the small and the huge file differ only in what surrounds the same edits."""
    std = Path(sysconfig.get_paths()["stdlib"])
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "dg-lsp-bench" / f"huge_{lines}_bisect.py"
    if out.exists():
        return out
    small = (std / "bisect.py").read_text(encoding="utf-8").split("\n")
    lines -= len(small)
    parts, n = [], 0
    for name in ("argparse", "typing", "inspect", "pathlib", "tarfile", "subprocess", "dataclasses",
                 "enum", "functools", "zipfile", "logging/__init__", "email/message", "difflib"):
        text = (std / f"{name}.py").read_text(encoding="utf-8")
        parts.append(text)
        n += text.count("\n")
        if n >= lines:
            break
    body = "\n".join(parts).split("\n")[:lines] + small
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(body), encoding="utf-8")  # small ends with "" (its final newline)
    return out


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def typing_replay(args, memory: str | None = None) -> dict:
    """The typing replay; ``memory``: the server's ``memory`` setting (None: its default), with
    ``args.workspace`` (if any) as the workspace folder its memory indexes."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    from dg_lsp.context import SyntaxDocument, literal_at, registry

    cmd = [sys.executable, "-m", "dg_lsp", "--stdio", "--log-level", os.environ.get("DG_LSP_BENCH_LOG", "warning")]
    if args.model:
        cmd += ["--model", args.model]
    if args.device:
        cmd += ["--device", args.device]
    if args.log_file:
        cmd += ["--log-file", args.log_file]
    client = LanguageClient("dg-lsp-bench", "1")
    t_spawn = time.perf_counter()
    await client.start_io(*cmd)
    options = {"seed": 0, **({"memory": memory} if memory else {})}
    ws = Path(args.workspace).resolve() if getattr(args, "workspace", None) else None
    await client.initialize_async(
        types.InitializeParams(capabilities=types.ClientCapabilities(), initialization_options=options,
                               root_uri=ws.as_uri() if ws else None,
                               workspace_folders=[types.WorkspaceFolder(uri=ws.as_uri(), name=ws.name)] if ws else None)
    )
    client.initialized(types.InitializedParams())
    latencies: dict[str, list[float]] = {}
    empty = 0
    cold_start = None
    for kind, path in source_files(args.huge):
        text = path.read_text()
        lines = text.split("\n")
        uri = path.as_uri()
        version = 1
        # lines to retype: non-trivial code lines spread over the file
        syn = SyntaxDocument(registry().for_language_id("python"), text)
        starts = [0]
        for ln in lines:
            starts.append(starts[-1] + len(ln) + 1)
        targets = [
            i for i, ln in enumerate(lines)
            if 20 <= len(ln.strip()) <= 60 and any(c in ln for c in "=(")
            and literal_at(syn, starts[i] + len(ln) - len(ln.lstrip()) + 1) is None
        ]
        targets = targets[:: max(1, len(targets) // args.lines)][: args.lines]
        if kind == "small":
            small_targets, small_len = targets, len(lines)
        elif kind == "huge":  # the same lines as in the small file, which ends the huge one
            targets = [len(lines) - small_len + t for t in small_targets]
        doc_lines = list(lines)
        for i in targets:
            doc_lines[i] = ""
        doc = "\n".join(doc_lines)
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=doc)
            )
        )
        if cold_start is None:
            # cold start: process spawn to the answer of the first request, made right after
            # initialize and didOpen, as an editor does when a file is opened with the cursor in it
            first = targets[0] if targets else 0
            await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=first, character=0),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
                )
            )
            cold_start = (time.perf_counter() - t_spawn) * 1000
        for i in targets:
            line = lines[i]
            for col, ch in enumerate(line):
                version += 1
                pos = types.Position(line=i, character=col)
                client.text_document_did_change(
                    types.DidChangeTextDocumentParams(
                        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text=ch)],
                    )
                )
                await asyncio.sleep(args.keystroke_ms / 1000)
                if ch in " .(,=:" and col >= len(line) - len(line.lstrip()):
                    t0 = time.perf_counter()
                    res = await client.text_document_inline_completion_async(
                        types.InlineCompletionParams(
                            text_document=types.TextDocumentIdentifier(uri=uri),
                            position=types.Position(line=i, character=col + 1),
                            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                        )
                    )
                    ms = (time.perf_counter() - t0) * 1000
                    latencies.setdefault(f"{kind}:{path.name}", []).append(ms)
                    empty += not res.items
        client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    rss = peak_rss_mb(client._server.pid)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    allv = [v for vs in latencies.values() for v in vs]
    return {
        "requests": len(allv),
        "empty_results": empty,
        "p50_ms": pct(allv, 50),
        "p95_ms": pct(allv, 95),
        "p99_ms": pct(allv, 99),
        "per_file": {k: {"n": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99)} for k, v in latencies.items()},
        "cold_start_to_first_completion_ms": cold_start,
        "server_peak_rss_mb": rss,
        "server": status.get("stats"),
        "model": status.get("model"),
        "memory": status.get("memory"),
    }


def side_prompts(engine) -> dict[str, tuple[str, str]]:
    """The side-by-side prompts, at a cursor inside ``argparse.py``: ``served``, what the server
    cuts there with its default budget (the checkpoint's training context); ``long``, 2,540
    characters before and 760 after (about 800 tokens, past what the embedded model was trained on)."""
    from dg_lsp.context import SyntaxDocument, cut_context, registry
    from dg_lsp.service import prompt_budget
    from dg_lsp.settings import DEFAULTS

    text = Path(sysconfig.get_paths()["stdlib"], "argparse.py").read_text()
    offset = text.find("def parse_known_args") + 40
    doc = SyntaxDocument(registry().for_language_id("python"), text)
    c = cut_context(doc, offset, engine.count_tokens, prompt_budget(DEFAULTS, engine), invoked=True)
    return {"served": (c.prefix, c.suffix), "long": (text[offset - 2540 : offset], text[offset : offset + 760])}


def best_of(configs: dict, run, repeats: int) -> tuple[float, str]:
    """The fastest median wall time over baseline configurations (dtype x threads) and its name."""
    import torch

    best = (float("inf"), "")
    threads = torch.get_num_threads()
    try:
        for name, (obj, n_threads) in configs.items():
            torch.set_num_threads(n_threads)
            run(obj)  # warm-up
            t = statistics.median(run(obj) for _ in range(repeats))
            best = min(best, (t, name))
    finally:
        torch.set_num_threads(threads)
    return best


def side_by_side(args) -> dict:
    """Our engine (its defaults: dtype auto, automatic threads) against the best of each baseline
    over float32 / bfloat16 and 1 / all threads, on each prompt of ``side_prompts``.

    Cold: every run starts from an empty prompt cache on both sides (prompt encode / prefill
    included). Warm (decode only): ours with the prompt already in its cache; autoregressive
    as (t(n tokens) - t(1 token)) / (n - 1) per token, i.e. the prefill and the first token
    taken out."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from dg_lsp.engine import Engine
    from dg_lsp.engine.loader import load_checkpoint

    engine = Engine.load(args.model, device=args.device or "cpu")
    dev = engine.device
    cores = os.cpu_count() or 1
    thread_counts = sorted({1, cores})
    hf = {dt: load_checkpoint(args.model, device=dev, dtype=dt).model for dt in ("float32", "bfloat16")}
    tc = hf["float32"].config.get_text_config()
    ar_cfg = Gemma3TextConfig(
        vocab_size=tc.vocab_size, hidden_size=tc.hidden_size, intermediate_size=tc.intermediate_size,
        num_hidden_layers=tc.num_hidden_layers, num_attention_heads=tc.num_attention_heads,
        num_key_value_heads=tc.num_key_value_heads, head_dim=tc.head_dim,
        layer_types=["full_attention"] * tc.num_hidden_layers, max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    ar32 = Gemma3ForCausalLM(ar_cfg).to(dev).eval()
    ar = {"float32": ar32, "bfloat16": Gemma3ForCausalLM(ar_cfg).to(dev).eval().to(torch.bfloat16)}
    ar["bfloat16"].load_state_dict(ar32.state_dict())
    gen_cfgs = {f"{dt}, {t} thr": (m, t) for dt, m in hf.items() for t in thread_counts}
    ar_cfgs = {f"{dt}, {t} thr": (m, t) for dt, m in ar.items() for t in thread_counts}
    steps = engine.settings.max_steps
    d = engine.describe()

    def sync() -> None:  # a GPU's queued work counts in the wall time
        if str(dev).startswith("cuda"):
            torch.cuda.synchronize()

    out: dict = {
        "steps": steps,
        "ours": {"dtype": d["dtype"], "matmul_dtype": d["matmul_dtype"], "threads": d["threads"]},
        "prompts": {},
    }

    def no_eos(logits, _argmax) -> None:
        logits[..., engine.eos_ids] = float("-inf")  # (an index assignment: logits[..., ids] is a copy)

    def ours(prefix: str, suffix: str, n: int, warm: bool) -> float:
        if not warm:
            engine.cache.reset()
        t0 = time.perf_counter()
        # n tokens: canvases of the engine's length, no early EOS allowed to shorten the work
        r = engine.infill(prefix, suffix, max_new_tokens=n, canvas_length=min(n, engine.canvas_length), seed=0,
                          logits_hook=no_eos)
        sync()
        elapsed = time.perf_counter() - t0
        if len(r.token_ids) != n:
            raise RuntimeError(f"our engine made {len(r.token_ids)} tokens, not {n}")
        return elapsed

    def ours_median(prefix: str, suffix: str, n: int, warm: bool) -> float:
        ours(prefix, suffix, n, warm)
        return statistics.median(ours(prefix, suffix, n, warm) for _ in range(args.repeats))

    for name, (prefix, suffix) in side_prompts(engine).items():
        prompt = engine.prompt(prefix, suffix)
        ids = torch.tensor([prompt.ids], device=dev)
        res: dict = {"prompt_tokens": len(prompt.ids)}

        # a. our loop vs generate(), same checkpoint, same step budget, one canvas, cold
        def hf_generate(model) -> float:
            t0 = time.perf_counter()
            with torch.inference_mode():
                model.generate(ids, max_new_tokens=engine.canvas_length, max_denoising_steps=steps)
            sync()
            return time.perf_counter() - t0

        def one_canvas() -> float:
            engine.cache.reset()
            t0 = time.perf_counter()
            engine.infill(prefix, suffix, max_new_tokens=engine.canvas_length, seed=0)
            sync()
            return time.perf_counter() - t0

        t_hf, hf_name = best_of(gen_cfgs, hf_generate, args.repeats)
        one_canvas()  # warm-up
        t_ours = statistics.median(one_canvas() for _ in range(args.repeats))
        res["generate_vs_ours"] = {"ours_ms": t_ours * 1000, "generate_ms": t_hf * 1000, "generate_config": hf_name,
                                   "speedup": t_hf / t_ours}

        # b. autoregressive causal LM of the same width/depth/vocab, KV cache, greedy
        def ar_run(n: int):
            def run(model) -> float:
                t0 = time.perf_counter()
                with torch.inference_mode():
                    model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
                sync()
                return time.perf_counter() - t0
            return run

        t_ar1, _ = best_of(ar_cfgs, ar_run(1), args.repeats)
        res["autoregressive"] = {}
        for n in (8, 32, 128):
            t_ar, ar_name = best_of(ar_cfgs, ar_run(n), args.repeats)
            per_token = max(1e-9, t_ar - t_ar1) / (n - 1)
            cold, warm = ours_median(prefix, suffix, n, False), ours_median(prefix, suffix, n, True)
            res["autoregressive"][n] = {
                "ar_config": ar_name, "ar_ms": t_ar * 1000, "ours_ms": cold * 1000,
                "ar_tokens_per_s": n / t_ar, "ours_tokens_per_s": n / cold, "ratio": t_ar / cold,
                "decode": {"ar_ms_per_token": per_token * 1000, "ours_warm_ms": warm * 1000,
                           "ar_tokens_per_s": 1 / per_token, "ours_tokens_per_s": n / warm,
                           "ratio": per_token * n / warm},
            }
        out["prompts"][name] = res
    return out


def markdown(res: dict) -> str:
    t = res.get("typing")
    model = (t or {}).get("model") or {}
    lines = [
        f"Model: {model.get('path', '?')}; device {res['device']}; {res['machine']}",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    if t:
        lines += typing_rows(t)
    sb = res.get("side_by_side")
    if sb:
        o = sb["ours"]
        lines.append(f"| side by side: ours | {o['dtype']} (products {o['matmul_dtype']}), {o['threads']} thread(s); baselines: best of float32 / bfloat16 x 1 / all threads |")
        for name, p in sb["prompts"].items():
            g = p["generate_vs_ours"]
            lines.append(
                f"| {name} prompt ({p['prompt_tokens']} tokens): ours vs generate(), {sb['steps']} steps | "
                f"{g['ours_ms']:.0f} vs {g['generate_ms']:.0f} ms ({g['generate_config']}): {g['speedup']:.2f}x |"
            )
            for n, v in p["autoregressive"].items():
                dec = v["decode"]
                lines.append(
                    f"| {name}, {n}-token middle: ours vs autoregressive, cold / decode only | "
                    f"{v['ours_tokens_per_s']:.0f} vs {v['ar_tokens_per_s']:.0f} tok/s: {v['ratio']:.2f}x / "
                    f"{dec['ours_tokens_per_s']:.0f} vs {dec['ar_tokens_per_s']:.0f} tok/s: {dec['ratio']:.2f}x ({v['ar_config']}) |"
                )
    return "\n".join(lines)


def typing_rows(t: dict) -> list[str]:
    lines = [
        f"| inline completion p50 / p95 / p99 | {t['p50_ms']:.0f} / {t['p95_ms']:.0f} / {t['p99_ms']:.0f} ms ({t['requests']} requests) |",
        f"| cold start to first completion | {t['cold_start_to_first_completion_ms']:.0f} ms |",
        f"| server peak RSS | {t['server_peak_rss_mb']:.0f} MB |",
    ]
    s = t.get("server") or {}
    if s:
        med = s.get("median_ms", {})
        phases = ", ".join(f"{k} {v:.1f}" for k, v in sorted(med.items()))
        lines += [
            f"| per-phase medians (ms) | {phases} |",
            f"| denoising steps per request (mean) | {s.get('denoising_steps_mean', 0):.1f} |",
            f"| tokens per forward | {s.get('tokens_per_forward', 0):.2f} |",
            f"| prompt-cache reuse (mean share of prompt) | {s.get('prompt_cache_reuse_mean', 0):.2f} |",
        ]
    for k, v in t["per_file"].items():
        lines.append(f"| {k} p50 / p99 | {v['p50_ms']:.0f} / {v['p99_ms']:.0f} ms (n={v['n']}) |")
    small = [v["p50_ms"] for k, v in t["per_file"].items() if k.startswith("small:")]
    huge = [v["p50_ms"] for k, v in t["per_file"].items() if k.startswith("huge:")]
    if small and huge:
        lines.append(f"| 20,000-line vs small file, p50 | {huge[0] / small[0]:.2f}x |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint directory (default: embedded)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--lines", type=int, default=6, help="lines retyped per file")
    ap.add_argument("--keystroke-ms", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-side-by-side", action="store_true")
    ap.add_argument("--skip-typing", action="store_true", help="only the side-by-side comparison")
    ap.add_argument("--huge", action="store_true", help="also replay typing in a 20,000-line file")
    ap.add_argument("--log-file", default=None, help="server log file")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "latency.json")
    ap.add_argument("--memory-ab", action="store_true",
                    help="replay typing with the memory off, then on (auto), one after the other, and report ratios")
    ap.add_argument("--workspace", default=None, help="a workspace folder for the server (its memory indexes it)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "device": args.device or "auto",
    }
    if args.memory_ab:
        off = asyncio.run(typing_replay(args, "off"))
        on = asyncio.run(typing_replay(args, "auto"))
        res["memory_ab"] = {"off": off, "auto": on, "ratio_p50": on["p50_ms"] / off["p50_ms"],
                            "ratio_p99": on["p99_ms"] / off["p99_ms"], "workspace": args.workspace}
        print(f"memory off: p50 {off['p50_ms']:.1f} p99 {off['p99_ms']:.1f} ms; memory auto: p50 {on['p50_ms']:.1f} "
              f"p99 {on['p99_ms']:.1f} ms; ratio p50 {res['memory_ab']['ratio_p50']:.2f}x p99 "
              f"{res['memory_ab']['ratio_p99']:.2f}x; RSS {off['server_peak_rss_mb']} -> {on['server_peak_rss_mb']} MB")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
        return
    if not args.skip_typing:
        res["typing"] = asyncio.run(typing_replay(args))
    if not args.skip_side_by_side:
        res["side_by_side"] = side_by_side(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(markdown(res))


if __name__ == "__main__":
    main()
