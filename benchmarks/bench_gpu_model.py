"""The model layer end to end on the machine at hand: load (unsloth 4-bit on a CUDA GPU), shrink the
vocabulary, add LoRA, train a few steps; for SmolLM2 and for a randomly initialised model with
Mistral-NeMo-Minitron-8B's layer shapes (fewer layers), under each backend asked for.

    .venv/bin/python -m benchmarks.bench_gpu_model [--models smollm2-135m,minitron-8b-shapes]
        [--backends auto] [--layers 2] [--steps 4] [--batch-size 2] [--max-length 2048]
        [--out benchmarks/results/gpu_model.json]

On a GPU, ``--backends unsloth,transformers`` compares unsloth with transformers + peft on the same
data and settings, side by side in one run (tokens per second, padding excluded; peak GPU memory).
On a CPU the same steps run in full precision (``--shape tiny`` makes the random model small enough
for a test). Prints a table and writes every figure to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import MistralConfig

from training_code import model_tools
from training_code.arc_loader import ArcDataset
from training_code.cli import checked, comma_choices
from training_code.formats import format_from_spec
from training_code.training import TrainConfig, train

RANDOM_MODEL = "minitron-8b-shapes"
# nvidia/Mistral-NeMo-Minitron-8B-Base's config.json: 40 layers of these shapes
MINITRON_8B_SHAPES = dict(hidden_size=4096, intermediate_size=11520, num_attention_heads=32, num_key_value_heads=8,
                          head_dim=128, vocab_size=131072, rope_theta=1_000_000.0, rms_norm_eps=1e-5,
                          tie_word_embeddings=False, max_position_embeddings=8192)
TINY_SHAPES = dict(hidden_size=64, intermediate_size=180, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                   vocab_size=512, tie_word_embeddings=False, max_position_embeddings=8192)


def random_model_dir(folder: Path, shape: str, layers: int, alphabet: str) -> Path:
    """A saved random Mistral model with the chosen shapes and ``layers`` layers (bfloat16 on disk)."""
    shapes = MINITRON_8B_SHAPES if shape == "minitron-8b" else TINY_SHAPES
    config = MistralConfig(num_hidden_layers=layers, **shapes)
    dtype = torch.bfloat16 if shape == "minitron-8b" else torch.float32
    loaded = model_tools.build_random_model(config, alphabet, dtype=dtype)
    target = folder / f"{RANDOM_MODEL}-{shape}-{layers}"
    model_tools.save_merged(loaded.model, loaded.tokenizer, target)
    return target


def count_4bit_layers(model: torch.nn.Module) -> int:
    return sum(1 for m in model.modules() if "4bit" in type(m).__name__.lower())


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gpu_memory_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def run_one(name: str, source: str, backend: str, data: ArcDataset, args) -> dict:
    """Load, shrink, add LoRA and train ``args.steps`` steps; every figure of the way."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    record: dict = {"model": name, "backend_asked": backend}
    began = time.perf_counter()
    loaded = model_tools.load_model(source, backend=backend, max_seq_length=args.max_length,
                                    load_in_4bit=model_tools.four_bit_option(args.four_bit))
    record.update(backend=loaded.backend, load_seconds=time.perf_counter() - began,
                  layers_4bit=count_4bit_layers(loaded.model), vocabulary_before=len(loaded.tokenizer),
                  parameters_before=parameters(loaded.model), gpu_gib_loaded=gpu_memory_gib())
    fmt = format_from_spec(args.format, eos=loaded.tokenizer.eos_token)
    began = time.perf_counter()
    shrunk, _mapping = model_tools.shrink_for_format(loaded, fmt)
    record.update(shrink_seconds=time.perf_counter() - began, vocabulary_after=len(shrunk.tokenizer),
                  parameters_after=parameters(shrunk.model))
    model = model_tools.add_lora(shrunk.model, r=args.lora_r, alpha=args.lora_r, train_embeddings=True,
                                 backend=shrunk.backend)
    record["lora_trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)

    count_tokens = model_tools.token_counter(shrunk.tokenizer)
    fitted, _too_long = data.fit_to_budget(fmt, args.max_length, count_tokens)
    collate = model_tools.MaskingCollator(shrunk.tokenizer, max_length=args.max_length, add_special_tokens=False)
    config = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, on_the_fly=False, progress=False,
                         log_every=0, max_length=args.max_length, seed=0, warmup_ratio=0.0)
    result = train(model, collate, fitted, fmt, config, count_tokens=count_tokens, description=f"{name} {backend}")
    record.update(steps=result.steps, losses=result.losses, tokens=result.tokens,
                  tokens_per_second=result.tokens_per_second, seconds_per_step=result.seconds / max(result.steps, 1),
                  padding_share=result.padding_share, gpu_gib_peak=gpu_memory_gib(),
                  finite=all(math.isfinite(x) for x in result.losses))
    del model, shrunk, loaded
    gc.collect()
    return record


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=f"smollm2-135m,{RANDOM_MODEL}",
                        help=f"comma-separated: smollm2-135m, {RANDOM_MODEL}, or model folders")
    parser.add_argument("--backends", default="auto", type=comma_choices(model_tools.BACKENDS),
                        help=f"comma-separated: {', '.join(model_tools.BACKENDS)}")
    parser.add_argument("--four-bit", default="auto", choices=model_tools.FOUR_BIT_CHOICES,
                        help="auto: 4-bit on CUDA (model_tools.load_model's default)")
    parser.add_argument("--shape", default="minitron-8b", choices=("minitron-8b", "tiny"),
                        help=f"layer shapes of {RANDOM_MODEL} (tiny: for tests on a CPU)")
    parser.add_argument("--layers", type=int, default=2, help=f"layers of {RANDOM_MODEL} (the real one has 40)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=16, help="ARC-AGI-1 training tasks in the fixed data")
    parser.add_argument("--format", default="architects", type=checked(format_from_spec))
    parser.add_argument("--out", default="benchmarks/results/gpu_model.json")
    args = parser.parse_args(argv)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"torch {torch.__version__} on {device}")
    source = ArcDataset.from_bundled("arc-agi-1/training")
    rng = np.random.default_rng(0)
    ids = sorted(source.tasks)
    data = source.subset([ids[i] for i in sorted(rng.choice(len(ids), size=args.tasks, replace=False))])
    records = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-model-") as scratch:
        for name in args.models.split(","):
            model_source = name
            if name == RANDOM_MODEL:
                began = time.perf_counter()
                model_source = str(random_model_dir(Path(scratch), args.shape, args.layers,
                                                    format_from_spec(args.format).alphabet))
                print(f"built {RANDOM_MODEL} ({args.shape}, {args.layers} layers) "
                      f"in {time.perf_counter() - began:.0f} s")
            for backend in args.backends.split(","):
                try:
                    record = run_one(name, model_source, backend, data, args)
                except Exception as error:  # noqa: BLE001  one failing path is a result to report, not a stop
                    record = {"model": name, "backend_asked": backend, "error": f"{type(error).__name__}: {error}"}
                records.append(record)
                print(json.dumps({k: v for k, v in record.items() if k != "losses"}), flush=True)
    print(f"\n{'model':<20} {'backend':<13} {'4-bit layers':>12} {'vocab':>15} {'tokens/s':>9} "
          f"{'s/step':>7} {'peak GiB':>9} {'loss first -> last':>20}")
    for r in records:
        if "error" in r:
            print(f"{r['model']:<20} {r['backend_asked']:<13} failed: {r['error']}")
            continue
        print(f"{r['model']:<20} {r['backend']:<13} {r['layers_4bit']:>12} "
              f"{r['vocabulary_before']:>7}->{r['vocabulary_after']:<7} {r['tokens_per_second']:>9.0f} "
              f"{r['seconds_per_step']:>7.2f} {r['gpu_gib_peak']:>9.1f} "
              f"{r['losses'][0]:>9.3f} -> {r['losses'][-1]:<8.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "torch": torch.__version__, "args": vars(args), "records": records},
                              indent=1), encoding="utf-8")
    print(f"wrote {out}")
    return records


if __name__ == "__main__":
    main()
