"""Theory of NPO vs GA divergence: sympy identities (:mod:`theory.symbolic`), exact flows and
optimiser dynamics re-exported by :mod:`theory.dynamics`, the paper's Theorem 2
(:mod:`theory.logistic`, :mod:`theory.theorem2`), curves, plots and the figure writer."""
