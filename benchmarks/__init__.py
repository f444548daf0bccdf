"""jaxnn's benchmark suite: ``make bench`` (``python -m benchmarks.run``); see docs/performance.md."""
