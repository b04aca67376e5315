#!/bin/bash
# Screen 2 (2026-12-06): what buys draft answers per CPU-hour. 20 CPU-minutes per arm, one at a time.
set -x
PY=.venv/bin/python
COMMON="--tokenizer model --cpu-minutes 20 --batch 16 --canvases 2 --threads 2 --corpus-mb 128 --warmup 100 --lr 2e-3 --schedule wsd --save-minutes 5 --log-every 20 --noise mask"
arm() {
  name=$1; shift
  [ -f runs/s2-$name/checkpoint/model.safetensors ] || $PY -m model.train --out runs/s2-$name $COMMON "$@" > runs/s2-$name.log 2>&1
  cp model/generation_config.json runs/s2-$name/checkpoint/
  [ -f runs/s2-$name/heldout.json ] || $PY -m model.eval --model runs/s2-$name/checkpoint --benchmarks '' --heldout 67 --threads 2 --out runs/s2-$name/heldout.json > runs/s2-$name/eval.log 2>&1
}
arm C --size mini --ar-weight 1
arm E --size mini --ar-weight 1 --canvas-weight 0
arm S --size small --ar-weight 1 --canvas-weight 0
arm P --size mini --ar-weight 1 --canvas-weight 0 --prefix-tokens 256 --suffix-tokens 128
echo done > runs/s2-done
