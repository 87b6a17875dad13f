"""Evaluate a fine-tuned Mistral-NeMo-Minitron-8B with the ARChitects' settings (H100).

    python -m training_code.run_evaluation_nemo --model models/nemo-minitron-8b-arc/merged [--help]

The ARChitects: per-task test-time training, DFS at 10% under 16 views, product-of-experts scoring;
about 2.2 minutes per task on an H100.
"""

from .arc_loader import RunFiles
from .candidates import DecodingConfig, ScoringConfig
from .evaluation import EvalConfig, TestTimeTraining, main

PRESET = EvalConfig(
    model="models/nemo-minitron-8b-arc/merged",
    files=RunFiles(output="output/nemo"),
    max_tokens=8192,
    ttt=TestTimeTraining(steps=64, batch_size=4, learning_rate=1e-4, lora_r=32, lora_alpha=32),
    decoding=DecodingConfig(views=16),
    scoring=ScoringConfig(views=16),
)

def run(argv: list[str] | None = None) -> int:
    """The console script ``arc-evaluate-nemo``: this preset with the command line's flags; the exit status."""
    return main(PRESET, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(run())
