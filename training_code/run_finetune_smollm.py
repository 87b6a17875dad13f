"""Fine-tune the bundled SmolLM2-135M on ARC-AGI-1 training tasks (runs on a CPU).

    python -m training_code.run_finetune_smollm [--max-steps 40] [--help]

Writes models/smollm2-arc/{adapter,merged,checkpoint,train_log.json,finetune_config.json}; a killed run
resumes from its last checkpoint when started again with the same settings. 20 training tasks are held
out to measure the loss before and after (train_log.json). Never trains on evaluation tasks.
"""

from .finetune import FinetuneConfig, main

PRESET = FinetuneConfig(
    model="smollm2-135m",
    name="smollm2-arc",
    train_datasets=("arc-agi-1/training output-from-examples",),
    lora_r=16, lora_alpha=32,  # r=16 keeps the adapter near 20 MB, so it can live in the repository
    learning_rate=2e-4, embedding_learning_rate=2e-5,
    max_steps=40, batch_size=2, grad_accumulation=2,
    # on a CPU the long tail of tasks costs more than it teaches: longer views drop examples to fit, and
    # the CPU demo answers the shortest evaluation tasks anyway
    max_length=1024,
    checkpoint_every=5,
    held_out_tasks=20,
)

def run(argv: list[str] | None = None) -> int:
    """The console script ``arc-finetune-smollm``: this preset with the command line's flags; the exit status."""
    return main(PRESET, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(run())
