"""[check] schedule / optimizer keys: `smfsym check` on the shipped schedule and momentum specs (exact orders)."""
import json

import pytest

from smfsym.cli import main
from smfsym.spec import SpecError, spec_from_dict


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("name,targets", [("cosine_schedule", {"gf": 1, "smf1": 1, "smf2": 2}),
                                          ("heavy_ball", {"smf1": 1, "smf2": 2})])
def test_shipped_schedule_and_momentum_specs_check_with_exact_orders(name, targets, tmp_path, capsys):
    assert main(["check", name, "-o", str(tmp_path / "out"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["method"] == "exact"
    for m, target in targets.items():
        assert abs(summary["orders"][m]["slope"] - target) < 0.15, (m, summary["orders"][m])


def _doc(**check):
    return {"problem": {"params": ["x"], "loss": "(x - z)**2 / 2", "constants": {"c": 2.0}},
            "data": {"z": {"law": "normal"}},
            "check": {"phi": "x**2", "x0": [1.0], "etas": [0.1, 0.05], **check}}


def test_schedule_keys_are_parsed_and_refused_naming_the_key():
    s = spec_from_dict(_doc(schedule="1 / (1 + c * t)"))
    u, t = s.check["schedule"].expr, s.check["schedule"].t
    assert float(u.subs(t, 0.5)) == pytest.approx(0.5)  # the constant c = 2 is bound: u(t) = 1/(1 + 2t)
    for bad, match in [(dict(schedule="1/(1+t)", optimizer="nesterov"), r"\[check\] schedule"),
                       (dict(schedule="os.system('x')"), r"\[check\] schedule"),
                       (dict(schedule="1/(1+s)"), r"\[check\] schedule"),
                       (dict(optimizer="lion"), r"\[check\] optimizer"),
                       (dict(optimizer="heavy_ball", friction=-1.0), r"\[check\] friction")]:
        with pytest.raises(SpecError, match=match):
            spec_from_dict(_doc(**bad))
