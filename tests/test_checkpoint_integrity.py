"""Damage to a saved checkpoint is caught on load: a byte flipped inside a weight's data (the
zip's stored CRCs are not checked by PyTorch), in every command that reads checkpoints; files
from before checksums still load; torch's long errors are cut between words."""

import random
import struct
import warnings
import zipfile

import pytest
import torch

from g2048lab.checkpoint import CheckpointError, CheckpointManager
from g2048lab.cli import main
from g2048lab.learners.loading import load_checkpoint
from g2048lab.learners.ntuple.network import NTupleConfig
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Trainer, TrainerConfig

SMALL_PPO = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=2)
LEARNERS = {  # learner: (its config, the weight to damage: keys into the payload)
    "ppo": (
        TrainerConfig(
            device="cpu",
            threads=1,
            learner_config=PPOLearnerConfig(preset="tiny", ppo=SMALL_PPO),
            seed=3,
        ),
        ("model", "tile_emb.weight"),
    ),
    "ntuple": (
        # non-zero weights without training: every afterstate starts at 1000 points
        TrainerConfig(
            learner="ntuple",
            learner_config=NTupleConfig(tuples="5x4", optimistic_init=1000.0),
            device="cpu",
        ),
        ("ntuple", "weights"),
    ),
}


def weight(payload: dict, keys: tuple[str, str]) -> torch.Tensor:
    return payload[keys[0]][keys[1]]


@pytest.fixture(scope="module", params=list(LEARNERS))
def run_folder(request, tmp_path_factory):
    """A run folder with two real checkpoints of one learner; returns (folder, weight keys)."""
    config, keys = LEARNERS[request.param]
    payload = Trainer(config).state_dict()
    folder = tmp_path_factory.mktemp(request.param)
    manager = CheckpointManager(folder)
    for iteration in (1, 2):
        manager.save({**payload, "iteration": iteration})
    return folder, keys


def data_offset(path, tensor: torch.Tensor) -> int:
    """Where ``tensor``'s bytes start in the checkpoint file: the zip entry (stored, not
    compressed) whose content they are, past its local header."""
    data = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.file_size == len(data) and archive.read(info) == data:
                start = info.header_offset
                name_length, extra_length = struct.unpack("<HH", raw[start + 26 : start + 30])
                offset = start + 30 + name_length + extra_length
                assert raw[offset : offset + len(data)] == data
                return offset
    raise AssertionError("the tensor's bytes are not an entry of the file")


def flip_exponent(path, tensor: torch.Tensor, element: int) -> None:
    """Change one byte of the file: the high byte (sign and exponent) of one float32."""
    offset = data_offset(path, tensor) + 4 * element + 3
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x40]))


@pytest.fixture
def damaged(run_folder, tmp_path):
    """A copy of the run folder whose latest checkpoint has one byte flipped in a weight;
    returns (folder, the damaged file)."""
    source, keys = run_folder
    folder = tmp_path / "run"
    folder.mkdir()
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    latest = folder / "ckpt-0000002.pt"
    good = torch.load(latest, weights_only=True)
    flip_exponent(latest, weight(good, keys), element=5)
    # the fault is real, and PyTorch alone does not notice it
    bad = torch.load(latest, weights_only=True)
    changed = weight(bad, keys).reshape(-1) != weight(good, keys).reshape(-1)
    assert changed.nonzero().flatten().tolist() == [5]
    return folder, latest


def test_a_byte_flipped_in_a_weight_is_one_line_naming_the_file_and_what_to_use(damaged):
    folder, latest = damaged
    for target in (latest, folder):  # a folder means its latest file
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(target)
        message = str(caught.value)
        assert message.startswith(f"{latest} is damaged: its content does not match the checksum")
        assert message.endswith(f"use another checkpoint of the run: ckpt-0000001.pt in {folder}")
        assert "\n" not in message
    assert load_checkpoint(folder / "ckpt-0000001.pt")["iteration"] == 1  # the advice works


@pytest.mark.parametrize("command", ["eval", "play", "resume", "teacher"])
def test_every_command_that_reads_a_checkpoint_refuses_a_damaged_one(
    damaged, command, tmp_path, capsys
):
    folder, latest = damaged
    # small budgets, so that a command that missed the damage would end, and the test fail
    runs = ["--runs-dir", str(tmp_path / "runs"), "--device", "cpu", "--quiet", "--minutes", "0.02"]
    argv = {
        "eval": ["eval", str(latest), "--games", "1", "--device", "cpu"],
        "play": ["play", "--checkpoint", str(latest), "--no-watch", "--games", "1"],
        "resume": ["train", "--resume", str(folder), *runs],
        "teacher": ["train", "--preset", "tiny", "--teacher", str(latest), *runs],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and "Traceback" not in err
    assert f"{latest} is damaged" in err


def test_a_file_without_a_checksum_loads_as_before(run_folder, tmp_path):
    """Checkpoints written before checksums hold none: they load unchecked."""
    source, keys = run_folder
    payload = torch.load(source / "ckpt-0000001.pt", weights_only=True)
    del payload["checksum"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert "checksum" not in loaded and torch.equal(weight(loaded, keys), weight(payload, keys))


def test_a_changed_payload_saved_again_gets_its_own_checksum(run_folder, tmp_path):
    source, keys = run_folder
    payload = load_checkpoint(source / "ckpt-0000001.pt")
    weight(payload, keys).reshape(-1)[0] += 1.0
    manager = CheckpointManager(tmp_path)
    manager.save({**payload, "iteration": 7}, score=1.0)  # also best.pt, a field added
    for path in (tmp_path / "ckpt-0000007.pt", manager.best_path):
        assert torch.equal(weight(load_checkpoint(path), keys), weight(payload, keys))


def test_a_damaged_checksum_is_damage(run_folder, tmp_path):
    source, _ = run_folder
    payload = torch.load(source / "ckpt-0000001.pt", weights_only=True)
    payload["checksum"] = payload["checksum"][:-1] + (
        "0" if payload["checksum"][-1] != "0" else "1"
    )
    torch.save(payload, tmp_path / "f.pt")
    with pytest.raises(CheckpointError, match="is damaged: its content does not match"):
        load_checkpoint(tmp_path / "f.pt")


@pytest.mark.filterwarnings("error")  # torch's warning about a foreign pickle is not shown
def test_torchs_long_errors_are_cut_between_sentences_or_words(tmp_path):
    """Real unreadable files: torch's messages run to hundreds of characters."""
    # fixed bytes: about 1 in 8 random files makes torch fail in a few words ("pop from empty
    # list"), which needs no cut, and made this test fail by chance
    (tmp_path / "random.pt").write_bytes(random.Random(0).randbytes(3000))
    save = CheckpointManager(tmp_path).save
    whole = save({"iteration": 1, "w": torch.ones(1000)}).read_bytes()
    (tmp_path / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    for name in ("random.pt", "truncated.pt"):
        with pytest.raises(Exception) as raw, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(tmp_path / name, weights_only=True)
        first_line = str(raw.value).strip().splitlines()[0]
        assert len(first_line) > 200  # long enough to need a cut
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(tmp_path / name)
        reason = str(caught.value).split("(truncated or corrupt: ", 1)[1].rsplit("); ", 1)[0]
        assert reason.endswith("...") and len(reason) <= 120
        kept = reason.removesuffix("...").rstrip()
        assert first_line.startswith(kept) and first_line[len(kept)] == " "  # a whole word
        assert kept.endswith(".")  # here torch's first sentence is whole
