"""Progress bars (tqdm, optional): on a terminal or in a notebook, never in a log file."""
from __future__ import annotations

import sys

def _in_notebook() -> bool:
    """True inside a Jupyter kernel (stderr is no terminal there, but tqdm.auto draws widgets)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:  # an IPython too old or half-imported: no widgets
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _progress(progress, total, desc):
    """A tqdm bar over ``total`` path-steps (paths x solver steps), or None when progress is off.

    Serial runs and executors count the same unit (a serial chunk adds its paths at every step, a
    finished task adds its paths x steps), so the bar and its rate read the same either way.
    """
    # default (None): bars on an interactive terminal and in notebooks; logs get the studies' lines
    show = (sys.stderr.isatty() or _in_notebook()) if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm

    # delay: only runs longer than a couple of seconds ever show a bar
    return tqdm(total=total, desc=desc, mininterval=0.5, leave=False, delay=0.0 if progress else 2.0,
                unit="path-steps", unit_scale=True)
