"""ARC-AGI solver pipeline: data, models, training, decoding, scoring and submission."""

__version__ = "0.1.0"
