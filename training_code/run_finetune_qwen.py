"""Fine-tune Qwen2.5-0.5B-Instruct with arc24's settings (GPU; loads from a local path).

    python -m training_code.run_finetune_qwen --model /path/to/Qwen2.5-0.5B-Instruct [--help]

arc24: LoRA r=128, learning rate 5e-5, batch 16, 8192 tokens, output-from-examples plus input-from-inputs.
"""

from .finetune import FinetuneConfig, main
from .training import TrainConfig

PRESET = FinetuneConfig(
    model="models/Qwen2.5-0.5B-Instruct",
    name="qwen2.5-0.5b-arc",
    train_datasets=("arc-agi-1/training output-from-examples", "arc-agi-1/training input-from-inputs"),
    format="GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    lora_r=128, lora_alpha=64,
    train_embeddings=False,
    train=TrainConfig(learning_rate=5e-5, embedding_learning_rate=5e-5, max_steps=2000, batch_size=16,
                      grad_accumulation=1, max_length=8192, mask_first_n_outputs=0, checkpoint_every=50),
)

def run(argv: list[str] | None = None) -> int:
    """The console script ``arc-finetune-qwen``: this preset with the command line's flags; the exit status."""
    return main(PRESET, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(run())
