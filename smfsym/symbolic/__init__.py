"""The symbolic layer: the lambdify wrapper, Problem, the noise expansion, SDE objects, models, LaTeX
(docs/architecture.md)."""
