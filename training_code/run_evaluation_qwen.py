"""Evaluate a fine-tuned Qwen2.5-0.5B (arc24's model size) on ARC tasks (GPU).

    python -m training_code.run_evaluation_qwen --model models/qwen2.5-0.5b-arc/merged [--help]
"""

from .evaluation import EvalConfig, main

PRESET = EvalConfig(
    model="models/qwen2.5-0.5b-arc/merged",
    format="GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    output="output/qwen",
    max_tokens=8192,
    ttt_steps=64, ttt_batch_size=4, ttt_learning_rate=5e-5, ttt_lora_r=32, ttt_lora_alpha=32,
    views=8, scoring_views=8,
)

def run(argv: list[str] | None = None) -> int:
    """The console script ``arc-evaluate-qwen``: this preset with the command line's flags; the exit status."""
    return main(PRESET, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(run())
