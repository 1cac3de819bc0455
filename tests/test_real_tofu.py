"""The ``smollm2-tofu`` experiment at its full size on the real model (slow, fixed seed).

It is ``npo reproduce smollm2-tofu`` and shares that command's cache
(``$NPO_CACHE_DIR/real-tofu``): after one run of either, this reads the cached records (the
model files are hashed again, a few seconds); from an empty cache it takes the experiment's
runtime (see the results log). The TOFU data comes from ``NPO_TOFU_DIR``.

What it checks: the target memorised its training split before unlearning (the protocol's
precondition), every method unlearns (forget probability down), and the paper's comparisons
at one budget, each computed by :func:`npo.llm.studies.tofu_claims`. A claim the measurement
does not support stays here as a strict ``xfail`` whose reason carries the numbers.
"""

from __future__ import annotations

import pytest

from npo.llm.studies import RealTofuConfig, run_real_tofu

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(real_dir, tofu_dir):
    return run_real_tofu(RealTofuConfig(model=str(real_dir), data=str(tofu_dir), progress=False))


def _claim(study, name):
    return study.extras["claims"][name]


def _rows(study):
    return {r["model"]: r for r in study.table}


def test_the_target_memorised_its_training_split(study):
    claim = _claim(study, "target_memorised")
    assert claim["holds"] is True, claim


def test_every_method_unlearns(study):
    rows = _rows(study)
    target = rows["target (before unlearning)"]["forget_prob"]
    for method in ("ga", "ga+rt", "npo", "npo+rt"):
        assert rows[method]["forget_prob"] <= 0.5 * target, (method, rows[method], target)


@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-01 (unlearning lr 1e-3, 20 steps, seed 0): NPO alone collapses "
    "too, model utility 0 for GA, GA+RT and NPO (a generated ROUGE of 0 somewhere makes the "
    "harmonic mean 0), so NPO is not above GA; NPO+RT 0.377 vs GA+RT 0 holds. NPO's "
    "divergence is far slower (final forget probability 6.0e-10 vs GA's 3.9e-116, retain "
    "probability 6.5e-6 vs 4.3e-102), but utility does not show it",
)
def test_npo_keeps_more_utility_than_ga(study):
    claim = _claim(study, "npo_keeps_more_utility")
    assert claim["holds"] is True, claim


def test_npo_rt_forgets_and_keeps_utility(study):
    claim = _claim(study, "npo_rt_forgets_keeps_utility")
    assert claim["holds"] is True, claim
