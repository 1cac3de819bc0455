"""Throughput of the TOFU evaluation, side by side in one run: answer scoring and greedy
generation as :mod:`npo.llm.eval.evaluate` does them against the naive forms, and the whole
suite.

- scoring: one padded forward per batch of whole items (answer + paraphrase + 5 perturbed
  answers, ``score_groups``) against one forward per sequence, on the same forget items;
- generation: left-padded batches with the KV cache (``generate_greedy``) against one prompt
  at a time (KV cache), and against batches without the cache;
- the suite: ``forget10`` + retain + real authors + world facts (1,017 items) with and without
  generation, through :func:`~npo.llm.eval.evaluate.evaluate_model`.

The default model is an untrained tiny Llama (a config, no download; tokenizer trained on
``full``): it never emits EOS, so every generation runs the full ``--max-new-tokens`` (the
worst case; a trained model stops earlier). ``--model DIR`` times a saved model instead.
Data: ``NPO_TOFU_DIR`` or ``../shared/data/tofu`` (:func:`npo.llm.data.tofu_dir`).

    python benchmarks/bench_eval.py                      # CPU, tiny Llama
    python benchmarks/bench_eval.py --model DIR --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="saved model (default: tiny Llama)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--items", type=int, default=40, help="forget items in the side-by-side runs")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64, help="sequences per scoring forward")
    p.add_argument("--gen-batch-size", type=int, default=64)
    args = p.parse_args()
    from npo.llm.data import read_split, tofu_dir

    try:
        data = tofu_dir()
    except ValueError as exc:
        print(f"bench_eval: skipped, {exc}")
        return 0

    from transformers.utils import logging as hf_logging

    from npo.llm.model import TinyLlamaSpec, build_tiny_llama, load_model

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    if args.model is None:
        full = read_split(data, "full")
        model, tok = build_tiny_llama(
            full.column("question") + full.column("answer"), TinyLlamaSpec(), seed=0
        )
        name = "tiny Llama (untrained, %.2fM parameters)" % (
            sum(p.numel() for p in model.parameters()) / 1e6
        )
    else:
        model, tok = load_model(args.model)
        name = str(args.model)
    device = torch.device(args.device)
    model = model.to(device).eval()
    print(f"model: {name}; device {device}; threads {torch.get_num_threads()}")
    _scoring_and_generation(args, data, model, tok, device)
    _suite(args, data, model, tok)
    return 0


def _scoring_and_generation(args, data: Path, model, tok, device) -> None:
    from npo.llm.encoding import encode_prompts
    from npo.llm.eval import EvalConfig, encode_set, generate_greedy, load_eval_data, score_groups

    # ---- scoring: grouped padded batches vs one forward per sequence
    cfg = EvalConfig(batch_size=args.batch_size, max_items=args.items, progress=False)
    ev = load_eval_data(data, "forget10", cfg)
    enc, groups, _ = encode_set(ev, tok, "forget", cfg.length_limit)
    pad = tok.pad_token_id
    score = lambda bs, gs: score_groups(model, enc, gs, batch_size=bs, pad_id=pad)  # noqa: E731
    score(args.batch_size, groups)  # warm-up
    singles = [[i] for g in groups for i in g]
    t_one, _ = _timed(lambda: score(1, singles))
    t_grp, _ = _timed(lambda: score(args.batch_size, groups))
    n, n_seq = len(groups), len(enc)
    print(f"\nscoring {n} forget items ({n_seq} sequences: answer, paraphrase, 5 perturbed each)")
    print(f"  one forward per sequence   {n / t_one:8.1f} items/s  {n_seq / t_one:8.1f} seq/s")
    print(
        f"  grouped padded batches     {n / t_grp:8.1f} items/s  {n_seq / t_grp:8.1f} seq/s   "
        f"x{t_one / t_grp:.1f}"
    )

    # ---- generation: batched + KV cache vs one at a time vs no cache
    prompts = encode_prompts(tok, ev.sets["forget"].column("question"))
    kw = dict(max_new_tokens=args.max_new_tokens, pad_id=pad, eos_id=tok.eos_token_id)
    gen = lambda bs, sub: generate_greedy(model, sub, batch_size=bs, **kw)  # noqa: E731
    gen(args.gen_batch_size, prompts[:2])  # warm-up
    t_batch, outs = _timed(lambda: gen(args.gen_batch_size, prompts))
    k = max(2, n // 8)
    t_single, _ = _timed(lambda: gen(1, prompts[:k]))
    t_nocache, _ = _timed(
        lambda: _no_cache(model, prompts[:k], args.max_new_tokens, pad, tok.eos_token_id, device)
    )
    new_tokens = sum(len(o) for o in outs)
    print(
        f"\ngreedy generation, up to {args.max_new_tokens} new tokens "
        f"({new_tokens / n:.0f} on average)"
    )
    print(f"  one prompt at a time, KV cache  {k / t_single:7.2f} items/s  ({k} items)")
    print(f"  batched {k:3d}, no KV cache        {k / t_nocache:7.2f} items/s  ({k} items)")
    per_item = t_batch / n
    print(
        f"  batched {args.gen_batch_size:3d}, KV cache (ours)     {n / t_batch:7.2f} items/s  "
        f"{new_tokens / t_batch:8.0f} tokens/s   x{(t_single / k) / per_item:.1f} vs one at a "
        f"time, x{(t_nocache / k) / per_item:.1f} vs no cache"
    )


def _suite(args, data: Path, model, tok) -> None:
    from npo.llm.eval import EvalConfig, evaluate_model, load_eval_data

    for generate in (False, True):
        cfg = EvalConfig(
            batch_size=args.batch_size,
            gen_batch_size=args.gen_batch_size,
            max_new_tokens=args.max_new_tokens,
            generate=generate,
            progress=False,
        )
        suite = load_eval_data(data, "forget10", cfg)
        items = sum(suite.n_items().values())
        t, _ = _timed(
            lambda cfg=cfg, suite=suite: evaluate_model(model, tok, suite, "forget10", config=cfg)
        )
        what = "scoring + generation + ROUGE" if generate else "scoring only (generate=False)"
        print(
            f"\nsuite forget10+retain+real_authors+world_facts ({items} items), {what}: "
            f"{t:.1f} s, {items / t:.1f} items/s"
        )


@torch.no_grad()
def _no_cache(model, prompts, max_new, pad, eos, device):
    """Greedy decoding in one left-padded batch, re-running the whole prefix every token."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, width - len(p) :], mask[b, width - len(p) :] = torch.tensor(p), 1
    ids, mask = ids.to(device), mask.to(device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    for _ in range(max_new):
        if bool(done.all()):  # stop like generate() does once every row has emitted EOS
            break
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        nxt = (
            model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
            .logits[:, -1]
            .argmax(-1)
        )
        done |= nxt == eos
        ids = torch.cat([ids, nxt[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    return ids


if __name__ == "__main__":
    sys.exit(main())
