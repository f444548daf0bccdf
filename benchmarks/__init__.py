"""jaxnn's benchmark suite: ``make bench`` (``python -m benchmarks.run``); see the README, "Performance"."""
