"""bench/curve_by_minute.py: which metric row stands for each minute of a run."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "curve_by_minute", Path(__file__).parents[1] / "bench" / "curve_by_minute.py"
)
curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curve)


def test_each_minute_is_its_last_row_and_gaps_and_the_tail_are_left_out():
    elapsed = [10, 40, 59, 70, 100, 130, 250, 290, 300.5, 301]
    rows = [
        {"time/elapsed_s": t, "env_steps": i, "rollout/score_mean": 10 * i}
        for i, t in enumerate(elapsed)
    ]
    points = curve.by_minute(rows)
    # minute 3's last row (130 s) is 50 s before its end, minute 4 has none; the rows
    # past 300 s are a few seconds of a sixth minute
    assert [p["minute"] for p in points] == [1, 2, 5]
    assert [p["env_steps"] for p in points] == [2, 4, 7]
    assert points[0]["mean_score"] == 20 and points[0]["share_2048"] is None
