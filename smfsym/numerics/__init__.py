"""The numerics layer: compiled SDEs, data-set sums as linear algebra, the solvers (docs/architecture.md)."""
