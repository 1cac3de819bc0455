# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TOFU on a CPU: finetune, unlearn, evaluate
#
# The paper's LLM protocol in miniature, on real TOFU text: a tiny Llama (built from a config,
# nothing downloaded) is fine-tuned on a few TOFU authors (the *target*), a second one on the
# same data without the forget author (the *retain model*, the ideal), then the target
# unlearns the forget author with GA and NPO+RT while the TOFU evaluation runs every few
# steps: forget quality (KS p-value of the per-item forget truth ratios against the retain
# model's) and model utility (harmonic mean of probability, ROUGE-L and truth ratio on retain,
# real authors and world facts).
#
# A model trained from scratch knows no real authors or world facts, so the data subset also
# teaches those question/answer pairs to both models (`knowledge=True`), standing in for a
# pre-trained LLM's general knowledge. Data: `NPO_TOFU_DIR`, else `../shared/data/tofu` beside
# the repository (`npo.llm.data.tofu_dir`), else `hf:locuslab/TOFU` when online. `NPO_FAST=1`
# (the test suite): 5 authors, well under a minute; `NPO_FAST=0`: 20 authors, 2 of them
# forgotten (about 3 minutes on 2 cores).

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

from npo.llm.data import tofu_dir
from npo.llm.eval import EvalConfig, eval_curves, evaluate_dir, make_eval_hook, plot_eval_curves
from npo.llm.eval.metrics import forget_quality
from npo.llm.subset import write_tofu_subset
from npo.llm.train import FinetuneConfig, UnlearnConfig, finetune, unlearn

FAST = os.environ.get("NPO_FAST", "1") != "0"
try:
    SOURCE = str(tofu_dir())
except ValueError as missing:
    if os.environ.get("HF_HUB_OFFLINE", "0") == "1":
        raise RuntimeError(
            f"{missing}; HF_HUB_OFFLINE=1 rules out hf:locuslab/TOFU (go online to use it)"
        ) from None
    SOURCE = "hf:locuslab/TOFU"
work = Path(tempfile.mkdtemp(prefix="npo-05-"))
if FAST:
    size = dict(authors=5, utility_items=16)
else:
    size = dict(authors=20, forget_authors=2, utility_items=50)
data = write_tofu_subset(SOURCE, work / "data", knowledge=True, **size)
print(f"TOFU text from {SOURCE}; subset in {data}")

# %% [markdown]
# **Target and retain model.** Same tiny Llama config and seed; the retain model never sees
# the forget author.

# %%
common = dict(data=str(data), init="tiny-llama", epochs=20 if FAST else 30, batch_size=8)
common.update(lr=3e-3, checkpoint_every=0, progress=False)
target = finetune(FinetuneConfig(split="full", out=str(work / "target"), **common)).model_dir
retain = finetune(FinetuneConfig(split="retain90", out=str(work / "retain"), **common)).model_dir

final_cfg = EvalConfig(max_new_tokens=64, progress=False)
retain_res = evaluate_dir(retain, data, config=final_cfg)
target_res = evaluate_dir(target, data, config=final_cfg, retain_results=retain_res.to_json())
for name, res in (("retain model", retain_res), ("target", target_res)):
    m = res.metrics
    print(
        f"{name:>12}: forget prob {m['forget_prob']:.3f}, "
        f"forget ROUGE-L {m['forget_rouge']:.3f}, model utility {m['model_utility']:.3f}, "
        f"forget quality {m['forget_quality']}"
    )

# %% [markdown]
# The target has memorized the forget author, the retain model has not, and the two are far
# apart in forget quality; against itself the retain model's forget quality is exactly 1.

# %%
assert target_res.metrics["forget_prob"] > 10 * retain_res.metrics["forget_prob"]
assert target_res.metrics["forget_quality"] < 0.05
retain_ratios = retain_res.items["forget"]["truth_ratio"]
assert forget_quality(retain_ratios, retain_ratios)[0] == 1.0
assert target_res.metrics["model_utility"] > 0.3  # the taught "general knowledge"

# %% [markdown]
# **Unlearning with evaluation curves.** GA and NPO+RT (beta 0.1, retain weight 1), AdamW at
# lr 1e-3 for 5 epochs over the forget author; the hook evaluates without generation (model
# utility from its 6 probability and truth-ratio parts) at step 0 and every 5 steps, and
# measures the KL to the target on forget and retain answers.

# %%
hook_cfg = EvalConfig(generate=False)
runs, finals = {}, {}
for method in ("ga", "npo+rt"):
    hook = make_eval_hook(
        data, "forget10", config=hook_cfg, retain_results=retain_res, reference=target
    )
    cfg = UnlearnConfig(
        model=str(target),
        data=str(data),
        forget="forget10",
        method=method,
        out=str(work / method),
        epochs=5,
        batch_size=4,
        lr=1e-3,
        eval_every=5,
        checkpoint_every=0,
        progress=False,
        ref_cache=str(work / "cache"),
    )
    result = unlearn(cfg, hooks=[hook])
    runs[method] = eval_curves(result.logs)
    retain_json = retain_res.to_json()
    finals[method] = evaluate_dir(
        result.model_dir, data, config=final_cfg, retain_results=retain_json, reference_dir=target
    )
plot_eval_curves(runs)

# %%
keys = ("forget_quality", "model_utility", "forget_prob", "forget_rouge", "retain_kl")
keys += ("gibberish_rate",)
print(f"{'':>8}" + "".join(f"{k:>16}" for k in keys))
for name, res in (("target", target_res), *finals.items()):
    values = [float("nan") if res.metrics[k] is None else res.metrics[k] for k in keys]
    print(f"{name:>8}" + "".join(f"{v:>16.4g}" for v in values))
print("example GA generation:", finals["ga"].items["forget"]["generation"][0][:120])

# %% [markdown]
# **Reading.** GA drives the forget probability to zero and collapses: its generations turn into
# repeated tokens and model utility falls towards 0, with a large KL to the target on retain
# answers. NPO+RT keeps model utility near the target's and stays close to it on retain data.
# The curves start at the target's evaluation (step 0).

# %%
ga, nr = finals["ga"].metrics, finals["npo+rt"].metrics
t = target_res.metrics
assert runs["ga"]["steps"][0] == 0
assert np.isclose(runs["ga"]["forget_quality"][0], t["forget_quality"])
assert ga["forget_prob"] < 0.01 * t["forget_prob"]
assert ga["model_utility"] < 0.2 * t["model_utility"] and ga["gibberish_rate"] > 0.5
assert nr["model_utility"] > 0.7 * t["model_utility"] and nr["gibberish_rate"] < 0.25
assert nr["retain_kl"] < 0.1 * ga["retain_kl"]
for res in (target_res, *finals.values()):
    assert all(v is None or np.isfinite(v) for v in res.metrics.values())
