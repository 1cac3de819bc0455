"""The ``smollm2-knowledge`` experiment at its full size on the real model (slow, fixed seed).

It is ``npo reproduce smollm2-knowledge``, and it shares that command's cache
(``$NPO_CACHE_DIR/knowledge``), so after one run of either only the preparation is redone
(loading, the lower-block cache, the start: 5 minutes on a loaded 2-core machine); from an
empty cache it takes the experiment's runtime (see the results log).

The claims are the issue's: at the same forget level GA loses retain accuracy and fluency well
before NPO does, and NPO+RT reaches a low forget accuracy with its retain accuracy near the
original. Each one is computed by :func:`npo.llm.studies.knowledge_claims`; a claim that the
measurement does not support stays here as a strict ``xfail`` whose reason carries the numbers.
"""

from __future__ import annotations

import pytest

from npo.llm.studies import KnowledgeConfig, run_knowledge

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def knowledge(real_dir):
    return run_knowledge(KnowledgeConfig(model=str(real_dir), progress=False))


def test_the_model_knows_enough_items(knowledge):
    items = knowledge.extras["items"]
    assert items["forget"] >= 40 and items["retain"] >= 40
    assert items["forget"] + items["retain"] >= 100
    start = knowledge.extras["start"]
    assert start["forget_accuracy"] == 1.0 and start["retain_accuracy"] == 1.0  # by construction


def test_every_method_forgets(knowledge):
    for method, curves in knowledge.curves.items():
        assert curves["forget_accuracy"]["median"][-1] <= 0.1, method


def _claim(knowledge, name):
    return knowledge.extras["claims"][name]


CLAIM_1 = "ga_loses_retain_first"
CLAIM_2 = "ga_loses_fluency_first"
CLAIM_3 = "npo_rt_forgets_and_retains"


def test_ga_diverges_faster_than_npo(knowledge):
    """At the end of the budget GA's held-out perplexity is at least twice NPO's.

    The paper's central point (GA drifts linearly, NPO logarithmically) read off the fluency
    on text in neither set, at the same steps and learning rate.
    """
    ppl = {m: knowledge.curves[m]["heldout_ppl"]["median"][-1] for m in ("ga", "npo")}
    assert ppl["ga"] >= 2 * ppl["npo"], ppl


@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-01 (lr 1e-4, 40 steps, seed 0): GA and NPO follow the same path "
    "until the facts are gone; at forget accuracy 0.2 (step 7.3 vs 7.2) retain accuracy GA "
    "0.672 vs NPO 0.673, a gap of 0.001 where the claim needs 0.1",
)
def test_ga_loses_retain_accuracy_before_npo(knowledge):
    assert _claim(knowledge, CLAIM_1)["holds"] is True


@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-01 (lr 1e-4, 40 steps, seed 0): at forget accuracy 0.2 held-out "
    "perplexity GA 3.80 vs NPO 3.79, where the claim needs GA >= 1.25 x NPO; GA's perplexity "
    "pulls away only later (178.9 vs 63.5 at step 40)",
)
def test_ga_loses_fluency_before_npo(knowledge):
    assert _claim(knowledge, CLAIM_2)["holds"] is True


@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-01 (lr 1e-4, 40 steps, seed 0): NPO+RT ends with forget accuracy "
    "0 but retain accuracy 0.570 (start 1), where the claim needs >= 0.9; it is still "
    "recovering at step 40 (0.089 at step 24, 0.291 at step 32)",
)
def test_npo_rt_forgets_and_keeps_retain_accuracy(knowledge):
    assert _claim(knowledge, CLAIM_3)["holds"] is True
