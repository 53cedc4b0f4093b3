"""Test data shared by several test files."""

from g2048lab.messages import TrainingUpdate


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
