"""Fine-tune Mistral-NeMo-Minitron-8B with the ARChitects' settings (H100; loads from a local path).

    python -m training_code.run_finetune_nemo --model /path/to/Mistral-NeMo-Minitron-8B-Base [--help]

The ARChitects: 4-bit, LoRA r=256, alpha 24, rsLoRA, learning rate 1e-4 (1e-5 for embeddings and head),
one epoch, batch 4 with accumulation 2, warmup 25%, cosine, 8192 tokens, first output masked.
"""

from .finetune import FinetuneConfig, main
from .training import TrainConfig

PRESET = FinetuneConfig(
    model="models/Mistral-NeMo-Minitron-8B-Base",
    name="nemo-minitron-8b-arc",
    train_datasets=("arc-agi-1/training output-from-examples",),
    load_in_4bit="yes",
    lora_r=256, lora_alpha=24, use_rslora=True, train_embeddings=True,
    train=TrainConfig(
        learning_rate=1e-4, embedding_learning_rate=1e-5,
        max_steps=400 * 8 // 8,  # one epoch of 400 tasks x 8 views at 8 sequences per optimizer step
        batch_size=4, grad_accumulation=2, warmup_ratio=0.25,
        max_length=8192, mask_first_n_outputs=1, gradient_checkpointing=True, on_the_fly=False, checkpoint_every=50,
    ),
)

def run(argv: list[str] | None = None) -> int:
    """The console script ``arc-finetune-nemo``: this preset with the command line's flags; the exit status."""
    return main(PRESET, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(run())
