"""Throughput of GameTransformer presets, and of a dense model of the same active size.

For each device, thread count and preset this times, at one batch size, a forward pass
in inference mode and a forward+backward pass in training mode, and prints samples/s
(medians of ``--repeats``), peak memory and parameter counts. Each MoE row has a
``dense`` row beside it: the same model with a plain feed-forward of hidden width
``top_k * d_expert`` (same active parameters and compute per token), and the MoE row's
``moe/dense`` column is the ratio of their times, i.e. the cost of routing and dispatch.

The MoE model and its baseline are timed in turns in one fresh process per thread count
and preset, so that other work on a shared machine slows both alike. Peak memory is one
forward+backward in a fresh process of its own: on CUDA ``torch.cuda.max_memory_allocated``;
on CPU the process's peak resident set size (``resource.getrusage``), which includes the
~300 MiB of torch itself.

    python bench/model_throughput.py                 # CPU: tiny cpu small, 1 and 2 threads
    python bench/model_throughput.py --presets base --threads 2    # base on CPU: slow
    python bench/model_throughput.py --device cuda   # CUDA: all four presets

Prints numbers only; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial

import torch

from g2048lab.model import PRESETS, GameTransformer, ModelConfig


def make_batch(batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random boards of mid-game exponents (0..11) and masks with at least one legal move."""
    gen = torch.Generator().manual_seed(0)
    boards = torch.randint(0, 12, (batch, 4, 4), generator=gen, dtype=torch.uint8)
    mask = torch.rand(batch, 4, generator=gen) < 0.75
    mask[torch.arange(batch), torch.randint(0, 4, (batch,), generator=gen)] = True
    return boards.to(device), mask.to(device)


def build(preset: str, dense: bool, device: torch.device) -> GameTransformer:
    torch.manual_seed(0)
    return GameTransformer(replace(ModelConfig.from_preset(preset), dense=dense)).to(device)


def forward_backward(model: GameTransformer, boards: torch.Tensor, mask: torch.Tensor) -> None:
    """One training step's worth of work, minus the optimiser, with a PPO-shaped loss."""
    out = model(boards, mask)
    log_probs = out.logits.log_softmax(-1).masked_fill(~mask, 0.0)
    loss = -log_probs.sum() + out.value.square().sum() + out.aux_loss
    loss.backward()
    model.zero_grad(set_to_none=True)


def forward(model: GameTransformer, boards: torch.Tensor, mask: torch.Tensor) -> None:
    with torch.inference_mode():
        model(boards, mask)


def seconds(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_pair(preset: str, threads: int, device_name: str, batch: int, repeats: int) -> dict:
    """Median seconds per batch of the MoE model and its dense baseline, for both passes.

    The two models take turns, repeat after repeat, so that whatever else the machine is
    doing slows both alike and their ratio stays fair.
    """
    device = torch.device(device_name)
    torch.set_num_threads(threads)
    models = {"moe": build(preset, False, device), "dense": build(preset, True, device)}
    boards, mask = make_batch(batch, device)
    times = {(ffn, step.__name__): [] for ffn in models for step in (forward, forward_backward)}
    for step in (forward, forward_backward):
        for model in models.values():
            model.train(step is forward_backward)
            step(model, boards, mask)  # warm-up
        for _ in range(repeats):
            for ffn, model in models.items():
                elapsed = seconds(partial(step, model, boards, mask), device)
                times[ffn, step.__name__].append(elapsed)
    return {f"{ffn} {step}": statistics.median(t) for (ffn, step), t in times.items()}


def peak_memory(preset: str, dense: bool, device_name: str, batch: int) -> dict:
    """Peak memory (MiB) of one forward+backward, and the model's parameter counts."""
    device = torch.device(device_name)
    model = build(preset, dense, device)
    boards, mask = make_batch(batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    forward_backward(model, boards, mask)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    count = model.num_params()
    return {"peak_mib": peak_mib, "total": count.total, "active": count.active}


def in_subprocess(*job: str) -> dict:
    """Run one ``--job`` of this script in a fresh process and return its JSON answer."""
    command = [sys.executable, __file__, "--job", *job]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(job)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_row(row: dict, dense_row: dict | None, batch: int) -> None:
    ratio = ""
    if dense_row is not None:
        forward_ratio = row["forward_s"] / dense_row["forward_s"]
        backward_ratio = row["forward_backward_s"] / dense_row["forward_backward_s"]
        ratio = f"{forward_ratio:>5.2f} {backward_ratio:>5.2f}"
    print(
        f"{row['device']:<6} {row['threads']!s:>3} {row['preset']:<6} {row['ffn']:<5} "
        f"{row['total'] / 1e6:>8.3f} {row['active'] / 1e6:>8.3f} "
        f"{batch / row['forward_s']:>9.0f} {batch / row['forward_backward_s']:>9.0f} "
        f"{row['forward_s'] * 1e3:>8.1f} {row['forward_backward_s'] * 1e3:>8.1f} "
        f"{row['peak_mib']:>7.0f} {ratio}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--presets", nargs="+", help="default: tiny cpu small on CPU, all four on CUDA"
    )
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU only")
    parser.add_argument(
        "--device", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    )
    parser.add_argument("--job", nargs="+", help=argparse.SUPPRESS)  # internal: one subprocess
    args = parser.parse_args()

    if args.job:
        kind, preset, device, *rest = args.job
        if kind == "time":
            answer = time_pair(preset, int(rest[0]), device, args.batch, args.repeats)
        else:
            answer = peak_memory(preset, rest[0] == "dense", device, args.batch)
        print(json.dumps(answer))
        return

    print(f"batch {args.batch}, median of {args.repeats}; samples/s and ms per batch")
    print("peak MiB: one forward+backward in a fresh process; CUDA max_memory_allocated,")
    print("  CPU peak resident set size (includes ~300 MiB of torch itself)")
    print("moe/dense: MoE time over the dense baseline's (timed in turns), fwd then fwd+bwd")
    print(
        f"{'device':<6} {'thr':>3} {'preset':<6} {'ffn':<5} {'total M':>8} {'active M':>8} "
        f"{'fwd/s':>9} {'fwd+bwd/s':>9} {'fwd ms':>8} {'f+b ms':>8} {'peak':>7} moe/dense"
    )
    batch = str(args.batch)
    for device in args.device:
        presets = args.presets or (["tiny", "cpu", "small"] if device == "cpu" else list(PRESETS))
        memory = {
            (preset, ffn): in_subprocess("memory", preset, device, ffn, "--batch", batch)
            for preset in presets
            for ffn in ("moe", "dense")
        }
        for threads in args.threads if device == "cpu" else [1]:
            for preset in presets:
                job = ("time", preset, device, str(threads), "--batch", batch)
                times = in_subprocess(*job, "--repeats", str(args.repeats))
                for ffn in ("moe", "dense"):
                    row = {
                        "device": device,
                        "threads": threads if device == "cpu" else "-",
                        "preset": preset,
                        "ffn": ffn,
                        "forward_s": times[f"{ffn} forward"],
                        "forward_backward_s": times[f"{ffn} forward_backward"],
                        **memory[preset, ffn],
                    }
                    baseline = None
                    if ffn == "moe":
                        baseline = {
                            "forward_s": times["dense forward"],
                            "forward_backward_s": times["dense forward_backward"],
                        }
                    print_row(row, baseline, args.batch)


if __name__ == "__main__":
    main()
