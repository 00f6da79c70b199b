"""The simulation layer: the SDE and SGD simulators and exact moments (docs/architecture.md)."""
