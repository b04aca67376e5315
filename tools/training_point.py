"""Append one point of the long run to ``model/training_log.json`` (plotted by ``tools/plot_training.py``).

    python tools/training_point.py NAME EVAL_JSON [--state runs/long/state.pt] [--train-log runs/long-stint3.log]
                                   [--note TEXT] [--log model/training_log.json]

``EVAL_JSON``: ``python -m model.eval ... --heldout 67`` output for the checkpoint (held-out scores,
in percent here); ``--state``: the training state it was exported from (step, tokens, cumulative
CPU time); ``--draft-eval``: the same checkpoint's held-out eval answering with its causal draft
(``draft_*`` scores; ``--draft-only`` adds just those to an existing point); ``--train-log``: the trainer's log, whose last ``--last`` ``step N loss L ar A`` lines
give the training losses. A point of the same name is replaced.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.heldout import most_frequent  # noqa: E402

LINE = re.compile(r"^step (\d+) loss ([\d.]+) ar ([\d.]+)")


def train_losses(log: Path, last: int) -> tuple[float | None, float | None]:
    rows = [m.groups() for m in map(LINE.match, log.read_text().splitlines()) if m]
    rows = rows[-last:]
    if not rows:
        return None, None
    return (round(statistics.mean(float(r[1]) for r in rows), 3), round(statistics.mean(float(r[2]) for r in rows), 3))


def scores(ev: dict) -> dict:
    """A held-out eval's rates, in percent, under the point's key names."""
    h = ev["heldout"]
    s = h["summary"]["all/all"]
    raw, post = s["raw"], s["post"]
    answers = [r["post"] for r in h["rows"] if r["post"].strip()]
    share, top = most_frequent(answers)  # of the non-blank answers; below, as a share of all holes
    return {"exact_raw": 100 * raw["exact"], "exact_post": 100 * post["exact"],
            "useful_raw": 100 * raw["useful"], "useful_post": 100 * post["useful"], "blank_post": 100 * post["empty"],
            "most_frequent_nonblank_post": 100 * share * len(answers) / len(h["rows"]),
            "most_frequent_nonblank_answer": top}


def point(name: str, ev: dict, state: dict | None, losses: tuple, note: str, eval_path: str) -> dict:
    h = ev["heldout"]
    s = h["summary"]["all/all"]
    post = s["post"]
    p = {"name": name}
    if state is not None:
        p.update(step=state["step"], cpu_hours=round(state["cpu_time"] / 3600, 3), tokens=state["tokens"])
    p.update(train_canvas_loss=losses[0], train_next_token_loss=losses[1], **scores(ev),
             whole_file_syntax_post=100 * post["whole_file_syntax"] if post["whole_file_syntax"] is not None else None,
             one_step_ce=s["cross_entropy"], causal_ce=(h.get("causal_cross_entropy") or {}).get("all"),
             note=note, eval=eval_path)
    return p


DRAFT_KEYS = ("exact_post", "useful_post", "useful_raw", "blank_post", "most_frequent_nonblank_post",
              "most_frequent_nonblank_answer")


def draft_scores(ev: dict) -> dict:
    """The ``draft_*`` keys of a point from a held-out eval of the same checkpoint answering with
    its causal draft (``python -m model.eval ... --sampler draft=answer``)."""
    sc = scores(ev)
    return {f"draft_{k}": sc[k] for k in DRAFT_KEYS}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("eval", type=Path)
    ap.add_argument("--state", type=Path, default=ROOT / "runs" / "long" / "state.pt")
    ap.add_argument("--train-log", type=Path, default=None)
    ap.add_argument("--last", type=int, default=10)
    ap.add_argument("--note", default="")
    ap.add_argument("--log", type=Path, default=ROOT / "model" / "training_log.json")
    ap.add_argument("--draft-eval", type=Path, default=None,
                    help="held-out eval of the same checkpoint answering with its causal draft: adds draft_* scores")
    ap.add_argument("--draft-only", action="store_true",
                    help="only add --draft-eval's scores to the existing point NAME (EVAL is ignored)")
    a = ap.parse_args(argv)
    if a.draft_only:
        log = json.loads(a.log.read_text())
        match = [q for q in log["points"] if q["name"] == a.name]
        if not match or a.draft_eval is None:
            raise SystemExit(f"--draft-only needs an existing point {a.name!r} and --draft-eval")
        match[0].update(draft_scores(json.loads(a.draft_eval.read_text())), draft_eval=str(a.draft_eval))
        a.log.write_text(json.dumps(log, indent=1) + "\n")
        print(json.dumps(match[0], indent=1))
        return
    ev = json.loads(a.eval.read_text())
    state = None
    if a.state.exists():
        import torch

        st = torch.load(a.state, map_location="cpu", weights_only=False)
        state = {"step": st["step"], "cpu_time": st["cpu_time"], "tokens": st["tokens"]}
    losses = train_losses(a.train_log, a.last) if a.train_log else (None, None)
    log = json.loads(a.log.read_text())
    p = point(a.name, ev, state, losses, a.note, str(a.eval))
    if a.draft_eval is not None:
        p.update(draft_scores(json.loads(a.draft_eval.read_text())), draft_eval=str(a.draft_eval))
    log["points"] = [q for q in log["points"] if q["name"] != a.name] + [p]
    a.log.write_text(json.dumps(log, indent=1) + "\n")
    print(json.dumps(p, indent=1))


if __name__ == "__main__":
    main()
