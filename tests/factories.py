"""Test data shared by several test files."""

import numpy as np

from g2048lab.messages import TrainingUpdate
from g2048lab.recording import GameRecord


def training_update(**changes) -> TrainingUpdate:
    """A plausible TrainingUpdate; keyword arguments replace any field."""
    fields = dict(
        run_id="r",
        iteration=3,
        episode=10,
        env_steps=4096,
        score=1234.5,
        max_tile=256,
        loss=0.5,
        policy_loss=0.1,
        value_loss=0.8,
        entropy=1.2,
        learning_rate=3e-4,
        actions=[0.1, 0.2, 0.3, 0.4],
        board_state=[[2, 4, 8, 16], [0, 0, 2, 4], [0, 0, 0, 2], [0, 0, 0, 0]],
        attention_weights=[[[1 / 16] * 16] * 16],
        expert_usage=[[0.25] * 4],
        gpu_memory=None,
        model_params=0.2,
        steps_per_second=2000.0,
        timestamp=1.7e9,
    )
    fields.update(changes)
    return TrainingUpdate(**fields)


def game_record(score: int, moves: int = 5) -> GameRecord:
    """A GameRecord of random (not necessarily legal) boards and moves, seeded by ``score``,
    ended at ``10 * score`` env steps."""
    rng = np.random.default_rng(score)
    return GameRecord(
        boards=rng.integers(0, 11, (moves + 1, 4, 4), dtype=np.uint8),
        actions=rng.integers(0, 4, moves),
        probs=rng.random((moves, 4), dtype=np.float32),
        values=rng.random(moves, dtype=np.float32),
        rewards=rng.random(moves, dtype=np.float32),
        score_gains=rng.integers(0, 64, moves),
        score=score,
        max_tile=1024,
        env_steps=score * 10,
        iteration=score // 10,
        timestamp=1000.0 + score,
    )


def trained_ntuple_teacher(folder, moves: int):
    """A small n-tuple network (5x4 tuples) trained for ``moves`` moves, saved in ``folder``
    as a run checkpoint: a teacher for kickstarting and start states. Its path."""
    from g2048lab.checkpoint import CheckpointManager
    from g2048lab.learners.ntuple.network import NTupleConfig
    from g2048lab.trainer import Trainer, TrainerConfig

    config = TrainerConfig(
        learner="ntuple",
        learner_config=NTupleConfig(tuples="5x4"),
        device="cpu",
        total_env_steps=moves,
    )
    trainer = Trainer(config)
    trainer.run()
    return CheckpointManager(folder).save(trainer.state_dict())
