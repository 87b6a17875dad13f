"""Memory and time of a test-time-training step on a CPU, keeping activations or recomputing them.

    .venv/bin/python -m benchmarks.bench_ttt_memory [--tokens 1024 2048 4096] [--batch-size 2] [--steps 2]
        [--out benchmarks/results/ttt_memory.json]

The SmolLM2 evaluation preset's model as the evaluation prepares it (shrunk to the format's alphabet, the
default adapter merged), a fresh test-time LoRA of the preset's rank, and --steps optimizer steps on batches
of --batch-size sequences of N tokens each (random digits of the format, whole sequences in the loss), with
gradient checkpointing off and on. Each configuration runs in a process of its own, so its peak resident
memory (``ru_maxrss``) is its own; the configurations alternate off, on, off, on, ... Reported per
configuration: peak memory in GB, seconds per step, and the growth in memory per token of the batch.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def one(tokens: int, batch_size: int, steps: int, checkpointing: bool) -> dict:
    """One configuration in this process: peak memory and seconds per step."""
    import torch

    from training_code.evaluation import prepare_session
    from training_code.run_evaluation_smollm import PRESET

    torch.set_num_threads(1)
    session = prepare_session(PRESET)
    session.attach_adapter(r=PRESET.ttt.lora_r, alpha=PRESET.ttt.lora_alpha, seed=0)
    model = session.model
    model.train()
    if checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    digits = torch.tensor(session.ids("0123456789"))
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    seconds = []
    for _ in range(steps):
        ids = digits[torch.randint(len(digits), (batch_size, tokens), generator=generator)]
        began = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - began)
    return {"tokens": tokens, "batch_size": batch_size, "checkpointing": checkpointing,
            "seconds_per_step": min(seconds), "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048, 4096],
                        help="tokens per sequence (the preset's context is 4096)")
    parser.add_argument("--batch-size", type=int, default=2, help="sequences per step (the preset's TTT batch)")
    parser.add_argument("--steps", type=int, default=2, help="steps per configuration (the fastest is reported)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ttt_memory.json"))
    parser.add_argument("--one", type=str, default="", help=argparse.SUPPRESS)  # a child: TOKENS,CHECKPOINTING
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1 or any(t < 8 for t in args.tokens):
        parser.error("--batch-size and --steps must be at least 1 and --tokens at least 8")
    if args.one:
        tokens, checkpointing = args.one.split(",")
        print(json.dumps(one(int(tokens), args.batch_size, args.steps, checkpointing == "on")))
        return 0
    rows = []
    for tokens in args.tokens:
        for checkpointing in ("off", "on"):
            done = subprocess.run([sys.executable, "-m", "benchmarks.bench_ttt_memory", "--one",
                                   f"{tokens},{checkpointing}", "--batch-size", str(args.batch_size),
                                   "--steps", str(args.steps)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{tokens:5d} tokens x {args.batch_size}, checkpointing {checkpointing:3s}: "
                  f"peak {row['peak_gb']:.2f} GB, {row['seconds_per_step']:.1f} s per step", flush=True)
    for checkpointing in (False, True):
        mine = [r for r in rows if r["checkpointing"] == checkpointing]
        if len(mine) > 1:
            slope = (mine[-1]["peak_gb"] - mine[0]["peak_gb"]) / ((mine[-1]["tokens"] - mine[0]["tokens"])
                                                                  * args.batch_size)
            print(f"checkpointing {'on' if checkpointing else 'off'}: {slope * 1e3:.2f} MB more per token of the "
                  f"batch")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "bench_ttt_memory", "command": " ".join(sys.argv),
                                    "rows": rows}, indent=1) + "\n", encoding="utf-8")
    print(f"{args.out} written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
