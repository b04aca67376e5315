"""The training state a later stint needs, small enough to commit (``train_state/``).

``runs/NAME/state.pt`` holds everything (float32 weights and Adam moments, pickled); it stays on
the machine that trained. What the repository keeps so that a stint on a fresh machine resumes
the same run:

* ``state.safetensors``: the stable (not decayed) weights in float32, each tied tensor once, and
  Adam's two moments per parameter in bf16 (``opt.<i>.exp_avg`` / ``opt.<i>.exp_avg_sq``);
* ``state.json``: step, wall and CPU time, tokens seen, the optimizer's param groups and step
  counts, and the run's TrainConfig.

``python -m model.train --out runs/NAME --save-compact train_state`` writes it from
``runs/NAME/state.pt``; ``python -m model.train --out runs/NEW --resume --init-from
train_state ...`` resumes from it when ``runs/NEW/state.pt`` does not exist. Moments in bf16
are the only loss: a resumed run continues the same trajectory up to their rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_compact(state: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in state["model"].items():
        if "vision" in k or v.data_ptr() in seen:  # tied tensors once; the vision tower is never trained
            continue
        seen.add(v.data_ptr())
        tensors["model." + k] = v.detach().float().contiguous()
    opt = state["opt"]
    steps = {}
    for i, st in opt["state"].items():
        tensors[f"opt.{i}.exp_avg"] = st["exp_avg"].to(torch.bfloat16).contiguous()
        tensors[f"opt.{i}.exp_avg_sq"] = st["exp_avg_sq"].to(torch.bfloat16).contiguous()
        steps[str(i)] = float(st["step"])
    save_file(tensors, str(out / "state.safetensors"))
    meta = {k: state.get(k) for k in ("step", "train_time", "tokens", "cpu_time", "cfg")}
    meta["param_groups"] = opt["param_groups"]
    meta["opt_steps"] = steps
    (out / "state.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out


def load_compact(in_dir: str | Path, model: torch.nn.Module) -> dict:
    """A state dict in ``state.pt``'s layout for ``model`` (whose own values fill what was not
    saved: the tied aliases, constant buffers and the vision tower)."""
    d = Path(in_dir)
    t = load_file(str(d / "state.safetensors"))
    meta = json.loads((d / "state.json").read_text())
    full = model.state_dict()
    saved = {k[len("model."):]: v for k, v in t.items() if k.startswith("model.")}
    by_ptr = {}
    for k, v in full.items():
        by_ptr.setdefault(v.data_ptr(), []).append(k)
    weights = {}
    for k, v in full.items():
        alias = next((a for a in by_ptr[v.data_ptr()] if a in saved), None)
        weights[k] = saved[alias] if alias is not None else v.detach().clone()
    opt_state = {}
    for i, step in meta["opt_steps"].items():
        opt_state[int(i)] = {"step": torch.tensor(step), "exp_avg": t[f"opt.{i}.exp_avg"].float(),
                             "exp_avg_sq": t[f"opt.{i}.exp_avg_sq"].float()}
    return {"model": weights, "opt": {"state": opt_state, "param_groups": meta["param_groups"]},
            **{k: meta.get(k) for k in ("step", "train_time", "tokens", "cpu_time", "cfg")}}
