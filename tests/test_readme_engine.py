"""The README's "Train your own model" block runs verbatim and trains."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_train_your_own_model_block_runs_as_printed():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Train your own model", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    result, more, loss_fn, params = ns["result"], ns["more"], ns["loss_fn"], ns["params"]
    X, Y = ns["X"], ns["Y"]
    before = float(np.mean(loss_fn(params, X, Y)))
    after = float(np.mean(loss_fn(result.params, X, Y)))
    assert after < 0.2 * before
    assert more.steps > result.steps  # resumed from result.state and went on
    assert result.history.val_loss.shape == (result.epochs,)
