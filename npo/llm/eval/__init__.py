"""TOFU evaluation of causal LMs: sets, scoring, metrics, the results file, curves.

- :mod:`npo.llm.eval.config`: :class:`~npo.llm.eval.config.EvalConfig`, the options;
- :mod:`npo.llm.eval.sets`: the four evaluation sets of a forget split
  (:func:`~npo.llm.eval.sets.load_eval_data`, :class:`~npo.llm.eval.sets.EvalData`) and their
  grouped sequences;
- :mod:`npo.llm.eval.scoring`: batched answer scoring (with a KL to a reference) and greedy
  generation;
- :mod:`npo.llm.eval.metrics`: TOFU's formulas on per-item numbers (probability, truth ratio,
  forget quality, model utility, ROUGE-L, the gibberish criterion);
- :mod:`npo.llm.eval.results`: per-item values, aggregates and the results file
  (:class:`~npo.llm.eval.results.EvalResult`,
  :func:`~npo.llm.eval.results.load_eval_results`);
- :mod:`npo.llm.eval.evaluate`: :func:`~npo.llm.eval.evaluate.evaluate_model`,
  :func:`~npo.llm.eval.evaluate.evaluate_dir`, :func:`~npo.llm.eval.evaluate.make_eval_hook`;
- :mod:`npo.llm.eval.plots`: :func:`~npo.llm.eval.plots.eval_curves` from a run's log and
  :func:`~npo.llm.eval.plots.plot_eval_curves`.
"""

from npo.llm.eval.config import EvalConfig
from npo.llm.eval.evaluate import evaluate_dir, evaluate_model, make_eval_hook
from npo.llm.eval.plots import CURVE_METRICS, eval_curves, plot_eval_curves
from npo.llm.eval.results import EvalResult, load_eval_results, summary_lines
from npo.llm.eval.scoring import Scores, generate_greedy, score_groups
from npo.llm.eval.sets import SETS, EvalData, encode_set, load_eval_data

__all__ = [
    "CURVE_METRICS",
    "SETS",
    "EvalConfig",
    "EvalData",
    "EvalResult",
    "Scores",
    "encode_set",
    "eval_curves",
    "evaluate_dir",
    "evaluate_model",
    "generate_greedy",
    "load_eval_data",
    "load_eval_results",
    "make_eval_hook",
    "plot_eval_curves",
    "score_groups",
    "summary_lines",
]
