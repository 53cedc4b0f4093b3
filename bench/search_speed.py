"""Expectimax speed, this tree against another (the commit before), side by side in one run.

Times the search a player uses on 50 fixed mid-game boards:

- an n-tuple network ("5x4" layout, trained for a few seconds) at depth 2 and 3;
- the transformer's "tiny" model (seeded weights, one torch thread) at depth 2;

each as one batched call over the 50 boards (how ``evaluate`` asks, one board per game
in play) and as 50 one-board calls (how a single watched or recorded game asks). The
boards and weights are made once, by the first tree, and loaded by both, so both search
the same positions with the same values; the moves and Q values of the two trees are
compared. Each timing is CPU time of the worker process (one thread: the numba kernels
run on one, torch is set to one), the best of the runs that fit in ``--seconds`` (at
least 3) and of ``--rounds`` rounds that alternate the trees: the machine may be shared.

    .venv/bin/python bench/search_speed.py --before /tmp/wt_e

``--before`` is a checkout of the previous commit (``git worktree add /tmp/wt_e REV``);
each tree runs in its own process with its own ``PYTHONPATH``. Trees from before the
engine folder (``g2048lab.search``, ``g2048lab.ntuple``, whose network had its own
compiled search) are timed through their own API.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BOARDS = 50
TRAIN_MOVES = 300_000  # a few seconds: values of a network that plays, not random ones
MOVES_BETWEEN_BOARDS = 97


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the other tree (a git worktree)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="time per case (at least 3 runs; the best counts)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds alternating the trees")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # the tree a worker runs in
    parser.add_argument("--fixture", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        fixture = Path(tmp) / "fixture"
        results: dict[str, dict] = {}
        for _ in range(args.rounds):
            for name, tree in (("before", Path(args.before).resolve()), ("after", here)):
                out = Path(tmp) / name
                env = {**os.environ, "PYTHONPATH": str(tree)}
                command = [sys.executable, __file__, "--before", str(args.before)]
                command += ["--worker", str(out), "--fixture", str(fixture)]
                command += ["--seconds", str(args.seconds)]
                subprocess.run(command, env=env, check=True)
                ms = json.loads((out.with_suffix(".json")).read_text())["ms"]
                kept = results.setdefault(
                    name, {"ms": ms, "q": dict(np.load(out.with_suffix(".npz")))}
                )
                kept["ms"] = {case: min(t, kept["ms"][case]) for case, t in ms.items()}
        _report(results)


def _report(results: dict) -> None:
    before, after = results["before"], results["after"]
    print(f"{'case (CPU ms, best)':34} {'before':>10} {'after':>10} {'speed':>7}")
    for case in before["ms"]:
        b, a = before["ms"][case], after["ms"][case]
        print(f"{case:34} {b:10.2f} {a:10.2f} {b / a:6.2f}x")
    for depth in (2, 3):
        qb, qa = before["q"][f"ntuple{depth}"], after["q"][f"ntuple{depth}"]
        same_illegal = np.array_equal(np.isneginf(qb), np.isneginf(qa))
        finite = np.isfinite(qb)
        diff = np.abs(qb[finite] - qa[finite])
        relative = (diff / np.maximum(1.0, np.abs(qb[finite]))).max()
        moves = (_moves(qb) == _moves(qa)).sum()
        print(
            f"n-tuple depth {depth}: same move on {moves}/{len(qb)} boards, same illegal moves "
            f"{same_illegal}, largest |dQ| {diff.max():.3g} (relative {relative:.2g})"
        )
    qb, qa = before["q"]["transformer2"], after["q"]["transformer2"]
    finite = np.isfinite(qb)
    print(
        f"transformer depth 2: same move on {(_moves(qb) == _moves(qa)).sum()}/{len(qb)} boards, "
        f"largest |dQ| {np.abs(qb[finite] - qa[finite]).max():.3g}"
    )


def _moves(q: np.ndarray) -> np.ndarray:
    moves = q.argmax(axis=1)
    moves[np.isneginf(q).all(axis=1)] = -1
    return moves


# --- one tree ---------------------------------------------------------------------------


def _worker(args) -> None:
    import torch

    torch.set_num_threads(1)
    api = _Api()
    fixture = Path(args.fixture)
    if not fixture.with_suffix(".npz").exists():
        _make_fixture(api, fixture)
    saved = np.load(fixture.with_suffix(".npz"))
    boards = saved["boards"]
    network = api.NTupleNetwork(api.NTupleConfig(tuples="5x4"))
    network.weights[:] = saved["weights"]
    model = api.GameTransformer(api.ModelConfig.from_preset("tiny")).eval()
    model.load_state_dict(torch.load(fixture.with_suffix(".pt")))
    searches = {
        "ntuple2": lambda b: api.ntuple_search(network, b, 2),
        "ntuple3": lambda b: api.ntuple_search(network, b, 3),
        "transformer2": lambda b: api.transformer_search(model, b, 2),
    }
    ms, q = {}, {}
    for name, search in searches.items():
        q[name] = search(boards)  # also compiles
        one_by_one = [b[None] for b in boards]
        ms[f"{name} batch of {BOARDS}"] = _best_ms(search, [boards], args.seconds)
        ms[f"{name} {BOARDS} x one board"] = _best_ms(search, one_by_one, args.seconds)
    out = Path(args.worker)
    out.with_suffix(".json").write_text(json.dumps({"ms": ms}))
    np.savez(out.with_suffix(".npz"), **q)


def _best_ms(search, batches: list[np.ndarray], seconds: float) -> float:
    """Milliseconds of ``search`` over all ``batches``: the best of at least 3 runs and of
    as many as fit in ``seconds``."""
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 3 or spent < seconds:
        start = time.process_time()
        for batch in batches:
            search(batch)
        took = time.process_time() - start
        best, spent, runs = min(best, took), spent + took, runs + 1
    return 1000 * best


def _make_fixture(api: _Api, fixture: Path) -> None:
    import torch

    network = api.NTupleNetwork(api.NTupleConfig(tuples="5x4", seed=1))
    network.train(TRAIN_MOVES)
    boards = []
    for _ in range(BOARDS):
        network.train(MOVES_BETWEEN_BOARDS)
        boards.append(network.board)
    np.savez(fixture.with_suffix(".npz"), boards=np.stack(boards), weights=network.weights)
    torch.manual_seed(0)
    model = api.GameTransformer(api.ModelConfig.from_preset("tiny"))
    torch.save(model.state_dict(), fixture.with_suffix(".pt"))


class _Api:
    """The search of the tree on ``PYTHONPATH``: the engine's one search over any value
    model, or (before the engine folder) the network's own compiled search."""

    def __init__(self) -> None:
        from g2048lab.model import GameTransformer, ModelConfig

        self.GameTransformer, self.ModelConfig = GameTransformer, ModelConfig
        try:
            from g2048lab.engine import search
            from g2048lab.learners.ntuple.network import NTupleConfig, NTupleNetwork
            from g2048lab.learners.ntuple.ntuple_learner import NTupleAgent

            self.ntuple_models = lambda network: NTupleAgent(network).value_model()
        except ImportError:
            from g2048lab.ntuple import NTupleConfig, NTupleNetwork  # type: ignore[no-redef]

            from g2048lab import search  # type: ignore[no-redef]

            self.ntuple_models = None
        self.search, self.NTupleConfig, self.NTupleNetwork = search, NTupleConfig, NTupleNetwork

    def ntuple_search(self, network, boards: np.ndarray, depth: int) -> np.ndarray:
        if self.ntuple_models is None:
            return network.search_values(boards, depth)
        return self.search.expectimax_values(boards, self.ntuple_models(network), depth)

    def transformer_search(self, model, boards: np.ndarray, depth: int) -> np.ndarray:
        value_model = self.search.transformer_value_model(model, gamma=0.99)
        return self.search.expectimax_values(boards, value_model, depth)


if __name__ == "__main__":
    main()
