"""The device manager on a machine without CUDA (CI), and its decisions."""

import warnings

import pytest
import torch

from g2048lab.device import (
    is_out_of_memory,
    memory_stats,
    ppo_sizes_for,
    resolve_preset,
    select_device,
    set_cpu_threads,
)

CPU = torch.device("cpu")


def test_cpu_and_auto_give_a_working_device():
    assert select_device("cpu") == CPU
    device = select_device("auto")
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback without CUDA")
def test_asking_for_missing_cuda_falls_back_to_the_cpu_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert select_device("cuda") == CPU
    assert "not available" in str(caught[0].message)


def test_cuda_failing_at_start_falls_back(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def broken(*args, **kwargs):
        if kwargs.get("device") is not None and str(kwargs["device"]).startswith("cuda"):
            raise RuntimeError("CUDA error: no CUDA-capable device is detected")
        return original(*args, **kwargs)

    original = torch.ones
    monkeypatch.setattr(torch, "ones", broken)
    with pytest.warns(UserWarning, match="CUDA failed at start"):
        assert select_device("auto") == CPU


def test_bad_device_names_say_what_is_allowed():
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        select_device("tpu")


def test_presets_and_sizes_follow_the_device():
    assert resolve_preset("auto", CPU) == "cpu"
    assert resolve_preset("small", CPU) == "small"
    assert ppo_sizes_for("base", CPU) == ppo_sizes_for("cpu", CPU)
    assert ppo_sizes_for("tiny", CPU)["num_envs"] < ppo_sizes_for("cpu", CPU)["num_envs"]
    assert ppo_sizes_for("base", torch.device("cuda"))["num_envs"] >= 1024


def test_memory_stats_on_the_cpu():
    stats = memory_stats(CPU)
    assert stats.cuda_allocated is None and stats.cuda_total is None
    assert 0 < stats.process_rss <= stats.process_peak_rss + 1e-3


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_cpu_threads_are_set_on_purpose():
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert set_cpu_threads(None) >= 1
        with pytest.raises(ValueError):
            set_cpu_threads(0)
    finally:
        torch.set_num_threads(before)
