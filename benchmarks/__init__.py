"""jaxnn's benchmark suite: ``make bench`` (``python -m benchmarks.run``); see the README, "Performance"."""

# A benchmark owns its process: let XLA:CPU compile small training loops as one function, as the
# `jaxnn` CLI does (jaxnn.xla_cpu; importing jaxnn itself changes nothing).
from jaxnn import xla_cpu

xla_cpu.request_small_loops()
