"""Merge a saved LoRA adapter into its base model, in 16 bits, as one checkpoint folder.

    python -m training_code.merge --base models/Mistral-NeMo-Minitron-8B-Base \\
        --adapter models/nemo-minitron-8b-arc/adapter --out models/nemo-minitron-8b-arc/merged [--help]

For an adapter trained elsewhere, or a 4-bit fine-tune whose merge did not finish: the base is loaded
in --dtype (never 4-bit: 4-bit weights cannot take the adapter exactly), shrunk to the vocabulary
saved beside the adapter, the adapter attached and folded in, and the result written to --out
(atomically; an earlier merged model there is replaced). The folder loads with
``AutoModelForCausalLM.from_pretrained`` and serves as ``--model`` of the run_evaluation_* scripts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import model_tools
from .cli import parse_config

DTYPES = ("bfloat16", "float16", "float32")


@dataclass
class MergeConfig:
    base: str = field(default="", metadata={"help": "the base model: bundled name, model folder or .gguf file"})
    adapter: str = field(default="", metadata={"help": "the adapter folder save_adapter wrote (its tokenizer beside)"})
    out: str = field(default="", metadata={"help": "folder for the merged model"})
    dtype: str = field(default="bfloat16", metadata={"help": "bfloat16, float16 or float32"})
    models_dir: str = field(default="models", metadata={"help": "where the bundled model is converted"})


class MergeOptionError(ValueError):
    """An option of the merge command that cannot work; found before any model loads."""


def check_options(config: MergeConfig) -> None:
    """Every path and value the merge needs, checked before any work; MergeOptionError says which and why."""
    for name in ("base", "adapter", "out"):
        if not getattr(config, name):
            raise MergeOptionError(f"--{name} is required")
    if config.dtype not in DTYPES:
        raise MergeOptionError(f"--dtype {config.dtype!r}: choose one of {', '.join(DTYPES)}")
    base = Path(config.base)
    if config.base != model_tools.SMOLLM2_NAME:
        if (base / "adapter_config.json").is_file():
            raise MergeOptionError(f"--base {base} holds a LoRA adapter, not a model: pass it as --adapter")
        if not ((base.is_dir() and (base / "config.json").is_file()) or (base.is_file() and base.suffix == ".gguf")):
            raise MergeOptionError(f"--base {base}: neither {model_tools.SMOLLM2_NAME!r}, a .gguf file, nor a folder "
                                   "with a config.json")
    adapter = Path(config.adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise MergeOptionError(f"--adapter {adapter}: no LoRA adapter there (adapter_config.json missing)")
    if not (adapter / "tokenizer_config.json").is_file():
        raise MergeOptionError(f"--adapter {adapter}: no tokenizer beside the adapter (tokenizer_config.json "
                               "missing), so the vocabulary it was trained on is unknown")
    out = Path(config.out).resolve()
    if out in (base.resolve(), adapter.resolve()):
        raise MergeOptionError(f"--out {config.out} is the base or the adapter folder: choose another folder")
    if out.is_file():
        raise MergeOptionError(f"--out {config.out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise MergeOptionError(f"--out {config.out} is a folder with other things in it (not a model): it would be "
                               "replaced; choose an empty or new folder")


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(MergeConfig(), argv, description=__doc__)
    try:
        check_options(config)
    except MergeOptionError as error:
        print(f"merge: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = model_tools.merge_saved_adapter(config.base, config.adapter, config.out, dtype=getattr(torch, config.dtype),
                                           models_dir=config.models_dir)
    print(f"merged {config.adapter} into {config.base} ({config.dtype}): {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
