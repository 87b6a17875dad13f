"""Test-wide settings."""

import os

import torch
from hypothesis import settings

# Property tests draw the same examples on every run, so that CI passes or fails the same way twice;
# HYPOTHESIS_PROFILE=explore draws new ones for a local hunt.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One thread: the tests' models are tiny, and on a shared 2-core machine two threads per process
# oversubscribe the cores (a small evaluation took 63 s with two threads, 2 s with one).
torch.set_num_threads(1)
