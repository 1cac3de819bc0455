"""Memory and time of `npo.logprobs.sequence_logprobs` against the naive log_softmax + gather.

Forward + backward on float32 logits of shape (B, T, V) = (8, 512, 32000) on the CPU.
Peak memory *added on top of the logits* (the logits' own gradient included) is measured in a
fresh process per variant (peak RSS minus RSS after allocating the logits); time is the median
of interleaved repetitions in this process. Goals: memory <= 0.5x naive, time <= 1.2x.

    python benchmarks/bench_logprobs.py [--B 8 --T 512 --V 32000 --reps 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from npo.logprobs import sequence_logprobs


def naive_sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The usual implementation: full float32 log_softmax, then gather (reference only)."""
    shifted = labels[:, 1:]
    mask = shifted != -100
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    tok = logp.gather(-1, shifted.clamp(min=0)[..., None])[..., 0]
    return (tok * mask).sum(-1)


VARIANTS = {
    "naive": naive_sequence_logprobs,
    "chunked": lambda logits, labels: sequence_logprobs(logits, labels)[0],
}


def make_inputs(b: int, t: int, v: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g).requires_grad_()
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[:, : t // 4] = -100  # a prompt that carries no loss
    return logits, labels


def step(fn, logits, labels) -> None:
    logits.grad = None
    fn(logits, labels).sum().backward()


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


def child(variant: str, b: int, t: int, v: int) -> None:
    torch.set_num_threads(torch.get_num_threads())
    logits, labels = make_inputs(b, t, v)
    base = _rss_kib()
    step(VARIANTS[variant], logits, labels)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"added_mib": (peak - base) / 1024}))


def measure_memory(variant: str, b: int, t: int, v: int) -> float:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--B",
        str(b),
        "--T",
        str(t),
        "--V",
        str(v),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["added_mib"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--T", type=int, default=512)
    ap.add_argument("--V", type=int, default=32000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--child", choices=sorted(VARIANTS))
    a = ap.parse_args()
    if a.child:
        child(a.child, a.B, a.T, a.V)
        return
    mem = {name: measure_memory(name, a.B, a.T, a.V) for name in VARIANTS}
    logits, labels = make_inputs(a.B, a.T, a.V)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for fn in VARIANTS.values():  # warm-up
        step(fn, logits, labels)
    for _ in range(a.reps):
        for name, fn in VARIANTS.items():
            t0 = time.perf_counter()
            step(fn, logits, labels)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    logits_mib = logits.numel() * logits.element_size() / 2**20
    print(f"logits (B={a.B}, T={a.T}, V={a.V}) float32: {logits_mib:.0f} MiB, forward+backward")
    for name in VARIANTS:
        print(
            f"  {name:8s} peak added {mem[name]:8.0f} MiB   median time {med[name] * 1e3:8.1f} ms"
        )
    mem_ratio = mem["chunked"] / mem["naive"]
    time_ratio = med["chunked"] / med["naive"]
    print(f"memory ratio chunked/naive = {mem_ratio:.2f}  (goal <= 0.50)")
    print(f"time ratio   chunked/naive = {time_ratio:.2f}  (goal <= 1.20)")


if __name__ == "__main__":
    main()
