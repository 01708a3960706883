"""A reference posterior from NUTS, and the sampling methods of the study judged against it.

- `problems`: the digits split, Bayesian softmax regression and a one-hidden-layer network
  (their likelihood, prior and Keras models);
- `nuts`: NUTS (numpyro) and ArviZ's R-hat and effective sample sizes;
- `posterior`: the reference of a problem, reduced to a compact resumable file;
- `methods`: MAP, the deep ensemble, SGLD, pSGLD, cyclical SGLD, SGHMC and cyclical SGHMC
  with the project's optimizers at a stated budget (`register` adds more);
- `metrics`: distances between predictive distributions and per-weight moments;
- `summary`: results.csv / .json / .md and a figure;
- `main`: `python -m applications.reference` (`--quick` for a smoke test).
"""
