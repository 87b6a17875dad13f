"""Test-wide settings."""

import torch

# One thread: the tests' models are tiny, and on a shared 2-core machine two threads per process
# oversubscribe the cores (a small evaluation took 63 s with two threads, 2 s with one).
torch.set_num_threads(1)
