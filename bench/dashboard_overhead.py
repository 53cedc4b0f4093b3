"""Training throughput with a live dashboard against headless, side by side, in a real kernel.

    python bench/dashboard_overhead.py [--preset cpu] [--iterations 4] [--repeats 3] [--threads 1]

The measurement runs inside a Jupyter kernel (executed with nbclient), so the
dashboard's widget and figure updates really go out as comm messages, as they do
in JupyterLab. Each repeat trains the same configuration twice, interleaved:
headless, then with ``Dashboard(trainer)`` displayed and its refresher running.
Throughput is env steps over wall time between the first (warm-up) and the last
iteration. Prints a table and one JSON line; target: dashboard >= 95% of headless.
"""

from __future__ import annotations

import argparse
import json

import nbformat
from nbclient import NotebookClient

KERNEL_CODE = """
import json, statistics
from IPython.display import display
from g2048lab.dashboard import Dashboard
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig

class Rows(Subscriber):
    def __init__(self, iterations):
        self.iterations, self.rows = iterations, []
    def on_iteration(self, metrics, context):
        self.rows.append(metrics)
        return context.iteration < self.iterations + 1

def measure(with_dashboard):
    settings = PPOLearnerConfig(preset={preset!r})
    trainer = Trainer(TrainerConfig(learner_config=settings, device="cpu", threads={threads}))
    rows = trainer.subscribe(Rows({iterations}))
    dashboard = None
    if with_dashboard:
        dashboard = Dashboard(trainer)
        display(dashboard)  # starts the refresher thread
    trainer.start()
    trainer.join()
    if dashboard is not None:
        dashboard.close()
    first, last = rows.rows[0], rows.rows[-1]
    seconds = last["time/elapsed_s"] - first["time/elapsed_s"]
    return (last["env_steps"] - first["env_steps"]) / seconds

runs = {{"headless": [], "dashboard": []}}
for _ in range({repeats}):
    runs["headless"].append(measure(False))
    runs["dashboard"].append(measure(True))
print("RESULT " + json.dumps(runs))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    code = KERNEL_CODE.format(
        preset=args.preset, threads=args.threads, iterations=args.iterations, repeats=args.repeats
    )
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(book, timeout=3600, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for o in book.cells[0].outputs if o.output_type == "stream")
    runs = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    headless = sorted(runs["headless"])[len(runs["headless"]) // 2]
    dashboard = sorted(runs["dashboard"])[len(runs["dashboard"]) // 2]
    print(f"{'setup':>10} {'median steps/s':>15}   runs")
    for name, values in runs.items():
        median = sorted(values)[len(values) // 2]
        print(f"{name:>10} {median:>15,.0f}   " + " ".join(f"{v:,.0f}" for v in values))
    print(f"dashboard / headless: {100 * dashboard / headless:.1f}%")
    print(json.dumps({"preset": args.preset, **runs, "ratio": dashboard / headless}))


if __name__ == "__main__":
    main()
