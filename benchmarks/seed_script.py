"""The seed notebook's own study as one NumPy script: what ``jaxnn train`` is timed against end to end.

Run as ``python -m benchmarks.seed_script DATA.csv STEPS``: it imports what the seed imports
(NumPy, scikit-learn's scaler and split), reads the Boston CSV, standardises it, splits it as the
seed does (``test_size=0.3, random_state=80718``), trains the seed's 13-sigmoid network with the
seed's own code (:func:`benchmarks.baselines.seed_numpy_loop`: its forward dict, its
``loss_gradients``, its update loop; minibatches of 23, learning rate 1e-3, the CLI benchmark's
settings) for ``STEPS`` steps and prints the training seconds. :mod:`benchmarks.small_fits` times
the whole process, start-up and imports included, as it times ``jaxnn train``.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from benchmarks.baselines import seed_numpy_loop


def main(argv: list[str]) -> None:
    path, steps = argv[0], int(argv[1])
    with open(path) as f:
        header = f.readline().strip().split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    target = header.index("medv") if "medv" in header else len(header) - 1
    X = np.delete(table, target, axis=1)
    y = table[:, target:target + 1]
    X = StandardScaler().fit_transform(X)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=80718)
    seconds = seed_numpy_loop(X_train, y_train, hidden=13, batch_size=23, steps=steps, lr=1e-3)
    print(f"trained {steps} steps in {seconds:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
