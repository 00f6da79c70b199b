"""The data layer: laws of the data, sampling, tails, quadrature and exact means (docs/architecture.md)."""
