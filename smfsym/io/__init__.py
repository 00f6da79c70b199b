"""The io layer: saving and loading studies, generated standalone simulators (docs/architecture.md)."""
