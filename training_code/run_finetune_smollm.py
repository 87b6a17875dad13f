"""Fine-tune the bundled SmolLM2-135M on ARC training data (runs on a CPU, for hours).

    python -m training_code.run_finetune_smollm [--max-steps 40] [--help]

Writes models/smollm2-arc/{adapter,merged,checkpoint,train_log.json,loss.png,finetune_config.json}. The
adapter and loss.png are rewritten at every checkpoint, so a long run is usable while it goes on; a
killed run resumes from its last checkpoint when started again with the same settings. 20 ARC-AGI-1
training tasks are held out (with every task that shares a grid with them) to measure held-out loss and
accuracy every --evaluate-every steps. No grid of an ARC-AGI-1 evaluation task is ever trained on
(--never-train-on).

The mix: ARC-AGI-1 training; ARC-AGI-2 training (less its 376 copies of ARC-AGI-1 evaluation tasks and
its 391 repeats of ARC-AGI-1 training tasks); tasks generated afresh from the verified programs' input
generators; arc24's reversed tasks and input-from-inputs prompts.
"""

from .finetune import FinetuneConfig, main
from .training import TrainConfig

PRESET = FinetuneConfig(
    model="smollm2-135m",
    name="smollm2-arc",
    train_datasets=(
        "arc-agi-1/training output-from-examples",
        "arc-agi-2/training output-from-examples",
        "generated*0.25 output-from-examples",
        "reversed:arc-agi-1/training*0.2 output-from-examples",
        "arc-agi-1/training*0.2 input-from-inputs",
    ),
    lora_r=16, lora_alpha=32,  # r=16 keeps the adapter near 20 MB, so it can live in the repository
    train=TrainConfig(
        learning_rate=2e-4, embedding_learning_rate=2e-5,
        # thousands of steps on one CPU thread take many hours: a short warm-up leaves the run near its peak
        # learning rate for most of it, so that the adapter is worth saving at any checkpoint
        max_steps=3000, warmup_ratio=0.02,
        # 4 sequences per optimizer step, one per forward pass: on a CPU a pass of one sequence costs little
        # fixed overhead, and no batch slot is padding (benchmarks/bench_training.py)
        batch_size=1, grad_accumulation=4,
        # on a CPU the long tail of tasks costs more than it teaches: longer views drop examples to fit, and
        # the CPU demo answers the shortest evaluation tasks anyway
        max_length=1024,
        mask_first_n_outputs=1,
        checkpoint_every=10,
        evaluate_every=100,
    ),
    held_out_tasks=20,
)

def run(argv: list[str] | None = None) -> int:
    """The console script ``arc-finetune-smollm``: this preset with the command line's flags; the exit status."""
    return main(PRESET, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(run())
