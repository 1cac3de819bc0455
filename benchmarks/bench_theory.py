"""Speed of the closed-form NPO flow `theory.flows.npo_log_ratio` against numerical integration.

The constant-tangent-kernel NPO flow u' = -2K sigmoid(beta u), u(0) = 0, on N log-spaced time
points in [1e-6, 1e12]: the closed form (Lambert W evaluated in log space) against
`scipy.integrate.solve_ivp` (DOP853, dense `t_eval`) at a ladder of tolerances. Accuracy of both
is measured against 60-digit mpmath on a subsample; "equal accuracy" rows pick the cheapest
solve_ivp tolerance that reaches a target error. Times are medians of interleaved repetitions in
this process. Goal: the closed form on 1e6 points well under a second.

solve_ivp's dense output makes one long trajectory cheap, so the script also times a sweep:
``--pairs`` (beta, K) pairs x ``--n-sweep`` points each, the closed form in one broadcast call
against one solve_ivp call per pair at ``rtol=1e-10``.

    python benchmarks/bench_theory.py [--n 1000000 --beta 0.5 --K 2.0 --reps 3 --pairs 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import mpmath
import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import expit

from theory.flows import npo_log_ratio

RTOLS = (1e-4, 1e-6, 1e-8, 1e-10, 1e-12, 1e-13)


def reference(t: np.ndarray, beta: float, K: float) -> np.ndarray:
    """u(t) from the Lambert-W form at 60 digits (mpmath), for an accuracy check."""
    out = []
    with mpmath.workdps(60):
        for ti in t:
            s = 2 * mpmath.mpf(beta) * mpmath.mpf(K) * mpmath.mpf(float(ti))
            out.append(float((mpmath.lambertw(mpmath.e ** (1 + s)) - 1 - s) / mpmath.mpf(beta)))
    return np.array(out)


def integrate(t: np.ndarray, beta: float, K: float, rtol: float) -> np.ndarray:
    sol = solve_ivp(
        lambda _t, u: -2.0 * K * expit(beta * u),
        (0.0, float(t[-1])),
        [0.0],
        t_eval=t,
        method="DOP853",
        rtol=rtol,
        atol=rtol * 1e-8,
    )
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y[0]


def timed(fn, reps: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--K", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--n-sweep", type=int, default=5000)
    a = ap.parse_args()
    t = np.geomspace(1e-6, 1e12, a.n)
    sub = np.unique(np.linspace(0, a.n - 1, 400).astype(int))
    ref = reference(t[sub], a.beta, a.K)

    def err(u: np.ndarray) -> float:
        return float(np.max(np.abs(u[sub] - ref) / np.abs(ref)))

    npo_log_ratio(t[:1000], beta=a.beta, K=a.K)  # warm-up
    t_closed, u_closed = timed(lambda: npo_log_ratio(t, beta=a.beta, K=a.K), a.reps)
    e_closed = err(u_closed)
    print(f"NPO flow u(t) on {a.n:,} log-spaced times in [1e-6, 1e12], beta={a.beta:g}, K={a.K:g}")
    print(
        f"  closed form               time {t_closed * 1e3:9.1f} ms   max rel error {e_closed:.1e}"
    )
    rows = []
    for rtol in RTOLS:
        t_ivp, u_ivp = timed(lambda r=rtol: integrate(t, a.beta, a.K, r), max(1, a.reps - 1))
        rows.append((rtol, t_ivp, err(u_ivp)))
        print(
            f"  solve_ivp DOP853 rtol={rtol:.0e} time {t_ivp * 1e3:9.1f} ms   max rel error "
            f"{rows[-1][2]:.1e}   time ratio ivp/closed {t_ivp / t_closed:7.1f}"
        )
    print(f"goal: closed form on 1e6 points well under 1 s: {t_closed:.3f} s")
    for target in (1e-6, 1e-10):
        ok = [r for r in rows if r[2] <= target]
        if ok:
            rtol, t_ivp, e = min(ok, key=lambda r: r[1])
            print(
                f"equal accuracy (<= {target:.0e}): solve_ivp rtol={rtol:.0e} ({e:.1e}) takes "
                f"{t_ivp / t_closed:.1f}x the closed form ({e_closed:.1e})"
            )
        else:
            print(f"equal accuracy (<= {target:.0e}): no solve_ivp tolerance reached it")
    best = min(rows, key=lambda r: r[2])
    print(
        f"most accurate solve_ivp: rtol={best[0]:.0e}, error {best[2]:.1e} (closed form "
        f"{e_closed:.1e}), time ratio ivp/closed {best[1] / t_closed:.2f}"
    )
    sweep(a)


def sweep(a) -> None:
    rng = np.random.default_rng(0)
    betas = 10 ** rng.uniform(-3, np.log10(20), a.pairs)
    Ks = 10 ** rng.uniform(-3, 1, a.pairs)
    t = np.geomspace(1e-6, 1e12, a.n_sweep)
    t_closed, u = timed(lambda: npo_log_ratio(t, beta=betas[:, None], K=Ks[:, None]), a.reps)
    t0 = time.perf_counter()
    worst = 0.0
    for i in range(a.pairs):
        ivp = integrate(t, betas[i], Ks[i], 1e-10)
        worst = max(worst, float(np.max(np.abs(ivp - u[i]) / np.maximum(np.abs(u[i]), 1e-300))))
    t_ivp = time.perf_counter() - t0
    print(
        f"sweep: {a.pairs} (beta, K) pairs x {a.n_sweep} points: "
        f"closed form {t_closed * 1e3:.1f} ms, "
        f"solve_ivp (rtol 1e-10, max rel difference {worst:.1e}) {t_ivp * 1e3:.0f} ms, "
        f"time ratio ivp/closed {t_ivp / t_closed:.0f}"
    )


if __name__ == "__main__":
    main()
