"""Evaluate a fine-tuned Qwen2.5-0.5B (arc24's model size) on ARC tasks (GPU).

    python -m training_code.run_evaluation_qwen --model models/qwen2.5-0.5b-arc/merged [--help]
"""

from .arc_loader import RunFiles
from .candidates import DecodingConfig, ScoringConfig
from .evaluation import EvalConfig, TestTimeTraining, main

PRESET = EvalConfig(
    model="models/qwen2.5-0.5b-arc/merged",
    format="GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    files=RunFiles(output="output/qwen"),
    max_tokens=8192,
    ttt=TestTimeTraining(steps=64, batch_size=4, learning_rate=5e-5, lora_r=32, lora_alpha=32),
    decoding=DecodingConfig(views=8),
    scoring=ScoringConfig(views=8),
)

def run(argv: list[str] | None = None) -> int:
    """The console script ``arc-evaluate-qwen``: this preset with the command line's flags; the exit status."""
    return main(PRESET, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(run())
