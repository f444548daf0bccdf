"""Overhead of the tqdm progress bar on training (issue: < 5%).

``python -m benchmarks.progress [--repeats N]``: trains the same digits MLP (64 relu units,
adam, 100 epochs, 20 compiled chunks) with no callback, with a no-op callback and with a real
``ProgressBar`` drawing to /dev/null, interleaved, and reports the median CPU seconds of each and
the bar's overhead as a ratio. Prints a table and one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from sklearn.datasets import load_digits

from jaxnn.progress import ProgressBar
from jaxnn.training import TrainConfig, fit, total_steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / (X.std(0) + 1e-9)
    Y = np.eye(10)[y]
    config = TrainConfig(hidden=(64,), activation="relu", loss="cross_entropy", optimizer="adam",
                         lr=1e-3, batch_size=32, epochs=100, init="glorot")
    fit(config, X, Y)  # compile once; every later fit reuses the program
    times: dict[str, list[float]] = {"none": [], "noop": [], "bar": []}
    with open(os.devnull, "w") as sink:
        for _ in range(args.repeats):
            for arm, seconds in times.items():
                t = time.process_time()
                if arm == "none":
                    fit(config, X, Y)
                elif arm == "noop":
                    fit(config, X, Y, callback=lambda info: None)
                else:
                    with ProgressBar(total_steps(config, len(X)), enable=True, file=sink) as bar:
                        fit(config, X, Y, callback=bar.update)
                seconds.append(time.process_time() - t)
    med = {arm: statistics.median(v) for arm, v in times.items()}
    report = {
        "steps": total_steps(config, len(X)),
        "cpu_seconds_median": med,
        "overhead_noop": med["noop"] / med["none"] - 1,
        "overhead_bar": med["bar"] / med["none"] - 1,
    }
    for arm, v in med.items():
        print(f"{arm:<5} median CPU {v:.4f} s")
    print(f"progress-bar overhead {100 * report['overhead_bar']:+.2f}% "
          f"(no-op callback {100 * report['overhead_noop']:+.2f}%)")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
