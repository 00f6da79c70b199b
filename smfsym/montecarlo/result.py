"""What a simulation returns: saved states, streamed statistics, success and message."""
from __future__ import annotations

from dataclasses import dataclass, field


import numpy as np

__all__ = ["SimulationResult", "simulation_to_xarray"]


@dataclass
class SimulationResult:
    """What a simulation returns.

    Attributes
    ----------
    t : ndarray (n_times,)
        Saved times (for SGD: step * eta).
    states : ndarray or None
        ``(n_times, n_paths, [n_points,] d)``; None when streamed (``store=False``).
    stats : dict
        Streamed means and standard errors: ``stats[name] = {"mean", "sem", "n"}``
        at every saved time; ``"state"`` is always there. Accumulated per seed
        block and merged in block order: bitwise identical for every ``chunk_size``.
    seed : SeedSequence
        Reproduces the run.
    scheme, dt, n_steps : str, float, int
    success, message : bool, str
        False with the reason when paths blew up and were masked.
    n_nonfinite : int
        Paths lost to non-finite states (masked); ``lost_fraction`` = n_nonfinite / n_paths.
    """

    t: np.ndarray
    states: np.ndarray | None
    stats: dict
    seed: np.random.SeedSequence
    scheme: str
    dt: float
    n_steps: int
    n_paths: int
    success: bool = True
    message: str = "ok"
    n_nonfinite: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def lost_fraction(self) -> float:
        """Fraction of paths masked after becoming non-finite."""
        return self.n_nonfinite / self.n_paths

    def mean(self, name: str = "state") -> np.ndarray:
        """Streamed mean of a statistic at every saved time."""
        return self.stats[name]["mean"]

    def sem(self, name: str = "state") -> np.ndarray:
        """Standard error of :meth:`mean` (sample std / sqrt(n))."""
        return self.stats[name]["sem"]

    def to_xarray(self):
        """The result as an ``xarray.Dataset`` (dims time, path, [point,] coord); needs xarray."""

        return simulation_to_xarray(self)

    def __repr__(self):
        shape = None if self.states is None else self.states.shape
        return (f"SimulationResult(scheme={self.scheme!r}, t={np.round(self.t, 6).tolist()}, states={shape}, "
                f"success={self.success}, message={self.message!r})")


def simulation_to_xarray(result):
    """A :class:`SimulationResult` as an ``xarray.Dataset`` (xarray is optional).

    Dimensions: ``time``, ``path``, ``point`` (n-point runs only) and ``coord``;
    the streamed means and standard errors are variables over ``time`` (and the
    other non-path dimensions).
    """
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - optional
        raise ImportError("`to_xarray` needs xarray: pip install xarray") from None
    data_vars = {}
    if result.states is not None:
        dims = ("time", "path", "point", "coord") if result.states.ndim == 4 else ("time", "path", "coord")
        data_vars["state"] = (dims, result.states)
    for name, st in result.stats.items():
        mean = np.asarray(st["mean"])
        dims = ("time",) + tuple(f"{name}_dim{i}" for i in range(mean.ndim - 1))
        if name == "state":
            dims = ("time", "point", "coord") if mean.ndim == 3 else ("time", "coord")
        data_vars[f"{name}_mean"] = (dims, mean)
        data_vars[f"{name}_sem"] = (dims, np.asarray(st["sem"]))
    attrs = {"scheme": result.scheme, "dt": result.dt, "n_steps": result.n_steps, "n_paths": result.n_paths,
             "success": int(result.success), "message": result.message,
             "seed_entropy": str(result.seed.entropy), "seed_spawn_key": str(tuple(result.seed.spawn_key))}
    return xr.Dataset(data_vars, coords={"time": np.asarray(result.t)}, attrs=attrs)
