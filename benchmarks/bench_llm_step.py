"""Step time and peak memory of the LLM trainer's step for GA, NPO (cached reference), NPO with a
live reference model (what existing toolkits do), NPO+RT and NPO+KL, side by side in one run.

The step timed is :func:`npo.llm.train.loop.train_step`, the one the trainer runs: forward,
``sequence_logprobs``, objective, backward, clipping, AdamW, schedule. The model is a Llama
built from a config (no download) and the data synthetic token sequences (a quarter prompt,
the rest answer), so nothing is read from disk.

- CPU (default): a small Llama; step times from all variants alive in one process, their steps
  interleaved (so load drifts of a shared machine hit all alike); memory from a fresh process
  per variant (peak RSS above its post-import baseline).
- CUDA (``--device cuda --config 1b``): a ~1.1B Llama at sequence length 512 in bf16; variants
  run in one process, interleaved over rounds; memory is ``torch.cuda.max_memory_allocated``
  (weights, gradients, optimizer state, activations); also tokens/s and model FLOPs
  utilization (6 N FLOPs per trained token plus attention, over the GPU's bf16 peak).

Goals: ``npo`` at most 1.05x ``ga`` in time and memory; cached ``npo`` at least 1.2x
(CPU) / 1.25x (GPU) faster than live-reference ``npo`` (a live reference adds one no-grad
forward to a forward+backward, so about 1.33x is the bound), with one copy of the weights
instead of two.

    python benchmarks/bench_llm_step.py                       # CPU, small
    python benchmarks/bench_llm_step.py --device cuda --config 1b
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

VARIANTS = {  # name: (method, reference)
    "ga": ("ga", "cache"),
    "npo": ("npo", "cache"),
    "npo-live": ("npo", "live"),
    "npo+rt": ("npo+rt", "cache"),
    "npo+kl": ("npo+kl", "cache"),
}
CONFIGS = {  # name: Llama shape, sequence length, batch (sequences per source per step)
    "tiny": dict(vocab=512, hidden=64, inter=172, layers=2, heads=4, kv=4, seq=64, batch=4),
    "small": dict(vocab=4096, hidden=192, inter=512, layers=4, heads=4, kv=4, seq=128, batch=4),
    "1b": dict(vocab=32000, hidden=2048, inter=5632, layers=22, heads=32, kv=4, seq=512, batch=8),
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def build(config: str, device: str, precision: str):
    """A Llama from a config, a placeholder tokenizer (pad id, saving), synthetic sequences."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from npo.llm.encoding import Encoded
    from npo.llm.model import resolve_precision, train_tokenizer

    c = CONFIGS[config]
    tok = train_tokenizer(["placeholder tokenizer for synthetic token ids"], 300)
    cfg = LlamaConfig(
        vocab_size=c["vocab"],
        hidden_size=c["hidden"],
        intermediate_size=c["inter"],
        num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"],
        num_key_value_heads=c["kv"],
        max_position_embeddings=c["seq"],
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    dtype, _ = resolve_precision(precision, device)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype)
    n = c["batch"] * 16
    g = torch.Generator().manual_seed(1)

    def seqs(name: str) -> Encoded:
        ids = torch.randint(3, c["vocab"], (n, c["seq"]), generator=g).tolist()
        return Encoded(name, tuple(map(tuple, ids)), (c["seq"] // 4,) * n)

    return model, tok, {"forget": seqs("forget"), "retain": seqs("retain")}, c


def make_setup(variant: str, *, config: str, device: str, precision: str, tmp: str):
    """The trainer's run for ``variant`` on the synthetic data (reference cache computed)."""
    from npo.llm.train import UnlearnConfig, make_accelerator, prepare_unlearning

    method, reference = VARIANTS[variant]
    model, tok, store, c = build(config, device, precision)
    cfg = UnlearnConfig(
        model="(in memory)",
        data="(synthetic)",
        out=f"{tmp}/{variant}",
        ref_cache=tmp,
        method=method,
        reference=reference,
        batch_size=c["batch"],
        max_length=c["seq"],
        lr=1e-5,
        precision=precision,
        checkpoint_every=0,
        drift_every=0,
        progress=False,
    )
    store = {s: store[s] for s in cfg.objective().needs()}
    setup = prepare_unlearning(cfg, model, tok, store, accelerator=make_accelerator(cfg))
    n_params = sum(p.numel() for p in setup.unwrapped.parameters())
    embed = setup.unwrapped.get_input_embeddings().weight.numel()
    tokens = len(store) * c["batch"] * c["seq"]  # trained tokens per step, prompts included
    flops = (6 * (n_params - embed) + 12 * c["layers"] * c["hidden"] * c["seq"]) * tokens
    weights_mib = sum(p.numel() * p.element_size() for p in setup.unwrapped.parameters()) / 2**20
    return setup, {"tokens": tokens, "flops": flops, "weights_mib": weights_mib}


def timed_step(setup, step: int) -> tuple[float, float]:
    """Seconds of one :func:`npo.llm.train.loop.train_step` (synchronized on CUDA) and its loss."""
    from npo.llm.train import STAT_KEYS, train_step

    device = setup.accelerator.device
    stats = torch.zeros(len(STAT_KEYS), dtype=torch.float64, device=device)
    t0 = time.perf_counter()
    rec = train_step(setup, step, stats)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, rec["loss"]


def measure(variant: str, *, config: str, device: str, precision: str, steps: int, warmup: int):
    """One variant on its own: median seconds per step and peak memory (MiB) above the
    baseline (CUDA: max allocated; CPU: peak RSS of this process above its post-import RSS)."""
    import accelerate  # noqa: F401  (imported before the memory baseline)
    import transformers  # noqa: F401

    base = _rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(config=config, device=device, precision=precision, tmp=tmp)
        setup, info = make_setup(variant, **kw)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        runs = [timed_step(setup, step) for step in range(warmup + steps)]
        if device == "cuda":
            mem = torch.cuda.max_memory_allocated() / 2**20
        else:
            mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
        del setup
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    seconds = statistics.median(t for t, _ in runs[warmup:])
    return {"seconds": seconds, "memory_mib": mem, "loss": runs[-1][1], **info}


def interleaved_times(
    variants, *, config: str, precision: str, steps: int, warmup: int, rounds: int
):
    """CPU: every variant's run alive in this process, steps interleaved variant by variant,
    so the machine's load drifts hit all variants alike. Median seconds per step."""
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(config=config, device="cpu", precision=precision, tmp=tmp)
        setups = {v: make_setup(v, **kw)[0] for v in variants}
        times: dict[str, list[float]] = {v: [] for v in variants}
        for step in range(warmup + steps * rounds):
            for v in variants:
                t, _ = timed_step(setups[v], step)
                if step >= warmup:
                    times[v].append(t)
    return {v: statistics.median(t) for v, t in times.items()}


def _child(args) -> None:
    out = measure(args.child, **_sizes(args))
    print("RESULT " + json.dumps(out))


def _sizes(args) -> dict:
    keys = ("config", "device", "precision", "steps", "warmup")
    return {k: getattr(args, k) for k in keys}


def _spawn(variant: str, args) -> dict:
    flags = [f"--{k}={v}" for k, v in {**_sizes(args), "threads": args.threads}.items()]
    cmd = [sys.executable, __file__, "--child", variant, *flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[-1][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--config", choices=sorted(CONFIGS), default=None)
    p.add_argument("--precision", default=None, help="default: fp32 on CPU, bf16 on CUDA")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per process (default 1: steadier timings on a shared machine)",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.config = args.config or ("1b" if args.device == "cuda" else "small")
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.child:
        return _child(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    runs = _measure_all(args)
    _print_table(args, runs)


def _measure_all(args) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {v: [] for v in args.variants}
    if args.device == "cuda":  # one variant at a time (memory), interleaved over rounds
        for _ in range(args.rounds):
            for v in args.variants:
                runs[v].append(measure(v, **_sizes(args)))
    else:  # memory: a fresh process per variant; time: all variants interleaved in this one
        for v in args.variants:
            runs[v].append(_spawn(v, args))
        sizes = {k: v for k, v in _sizes(args).items() if k != "device"}
        times = interleaved_times(args.variants, rounds=args.rounds, **sizes)
        for v in args.variants:
            runs[v][0]["seconds"] = times[v]
    return runs


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _print_table(args, runs: dict[str, list[dict]]) -> None:
    keys = ("seconds", "memory_mib", "tokens", "flops")
    res = {v: {k: statistics.median(r[k] for r in rs) for k in keys} for v, rs in runs.items()}
    cuda = args.device == "cuda"
    name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    c = CONFIGS[args.config]
    print(
        f"device: {name}; config {args.config} (hidden {c['hidden']}, {c['layers']} layers, "
        f"vocab {c['vocab']}), seq {c['seq']}, batch {c['batch']} per source, {args.precision}; "
        f"median of {args.steps} steps x {args.rounds} rounds"
    )
    header = ("step ms", "peak MiB", "tokens/s", "MFU", "time/ga", "mem/ga")
    widths = (9, 9, 10, 6, 8, 7)
    print(f"{'variant':10} " + " ".join(f"{h:>{w}}" for h, w in zip(header, widths)))
    ga = res.get("ga")
    for v, r in res.items():
        mfu = f"{r['flops'] / r['seconds'] / peak:6.1%}" if peak and cuda else "   n/a"
        rt = f"{r['seconds'] / ga['seconds']:8.3f}" if ga else "     n/a"
        rm = f"{r['memory_mib'] / ga['memory_mib']:7.3f}" if ga else "    n/a"
        ms, mib, tps = 1e3 * r["seconds"], r["memory_mib"], r["tokens"] / r["seconds"]
        print(f"{v:10} {ms:9.1f} {mib:9.0f} {tps:10.0f} {mfu} {rt} {rm}")
    if {"ga", "npo", "npo-live"} <= set(res):
        t_ratio = res["npo"]["seconds"] / res["ga"]["seconds"]
        m_ratio = res["npo"]["memory_mib"] / res["ga"]["memory_mib"]
        speedup = res["npo-live"]["seconds"] / res["npo"]["seconds"]
        goal = 1.25 if cuda else 1.2
        print(f"npo / ga step time   {t_ratio:.3f}  (goal <= 1.05: {_met(t_ratio <= 1.05)})")
        print(f"npo / ga peak memory {m_ratio:.3f}  (goal <= 1.05: {_met(m_ratio <= 1.05)})")
        print(
            f"live-reference npo / cached npo step time {speedup:.3f}  (goal >= {goal}: "
            f"{_met(speedup >= goal)}; ~1.33 if a forward costs a third of forward+backward)"
        )
        extra = res["npo-live"]["memory_mib"] - res["npo"]["memory_mib"]
        print(
            f"live-reference npo holds {extra:.0f} MiB more than cached npo (the weights are "
            f"{runs['npo'][0]['weights_mib']:.0f} MiB: a second copy vs one)"
        )


if __name__ == "__main__":
    main()
