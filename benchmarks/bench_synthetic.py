"""Speed of the synthetic experiments against their goals, measured side by side in one run.

1. The whole ``npo reproduce fig4-alpha1`` command (data, pi_ref/pi_retr by 20000 GD steps,
   10 methods x 5 seeds x 2000 unlearning steps with evaluation, float64, figures and files),
   in a fresh process. Goal: <= 30 s on 2 cores (the official code takes about 4 minutes).
2. The batched runner against a Python loop over the same 50 runs with the same kernels
   (each run alone through the same runner), on the same ``--loop-steps`` steps.
   Goal: batched >= 10x faster.

    python benchmarks/bench_synthetic.py [--loop-steps 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from npo.experiment import ReproduceConfig
from synthetic.experiments import references, table1_specs
from synthetic.models import select_seed
from synthetic.runner import RunConfig, run_unlearning


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop-steps", type=int, default=300)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "npo.cli", "reproduce", "fig4-alpha1", "--out", out]
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--no-progress"], check=True, capture_output=True)
        t_cmd = time.perf_counter() - t0
    print(f"npo reproduce fig4-alpha1 (fresh process): {t_cmd:.1f} s  (goal <= 30 s)")

    config = ReproduceConfig(progress=False)
    task, refs = references(config, 1.0)
    specs = table1_specs(1.0)
    run = RunConfig(steps=a.loop_steps, progress=False)
    t0 = time.perf_counter()
    run_unlearning(task, refs, specs, run)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for spec in specs:
        for s in range(len(config.seed_list)):
            run_unlearning(*select_seed(task, refs, s), (spec,), run)
    t_loop = time.perf_counter() - t0
    n = len(specs) * len(config.seed_list)
    print(f"{n} runs x {a.loop_steps} steps: batched {t_batched:.2f} s, loop {t_loop:.2f} s")
    print(f"batched speed-up over the loop = {t_loop / t_batched:.1f}x  (goal >= 10x)")


if __name__ == "__main__":
    main()
