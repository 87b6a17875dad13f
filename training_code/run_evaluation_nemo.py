"""Evaluate a fine-tuned Mistral-NeMo-Minitron-8B with the ARChitects' settings (H100).

    python -m training_code.run_evaluation_nemo --model models/nemo-minitron-8b-arc/merged [--help]

The ARChitects: per-task test-time training, DFS at 10% under 16 views, product-of-experts scoring;
about 2.2 minutes per task on an H100.
"""

from .evaluation import EvalConfig, main

PRESET = EvalConfig(
    model="models/nemo-minitron-8b-arc/merged",
    output="output/nemo",
    max_tokens=8192,
    ttt_steps=64, ttt_batch_size=4, ttt_learning_rate=1e-4, ttt_lora_r=32, ttt_lora_alpha=32,
    views=16, scoring_views=16,
)

def run(argv: list[str] | None = None) -> int:
    """The console script ``arc-evaluate-nemo``: this preset with the command line's flags; the exit status."""
    return main(PRESET, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(run())
