"""The model session: a loaded, shrunk model with its tokenizer and format, and the adapter that
test-time training attaches to it for one task (``attach_adapter``, ``train_adapter``, ``remove_adapter``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

from . import model_tools
from .arc_loader import ArcDataset
from .inference_tools import StageFormats
from .training import TrainConfig, train


class ModelSession:
    """A loaded, shrunk model with its tokenizer and format: turns views into token ids and back."""

    def __init__(self, loaded: model_tools.LoadedModel, fmt, max_tokens: int, formats: StageFormats = StageFormats()):
        self.loaded = loaded
        self.formats = formats  # the number format of the prompt passes and of scoring
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.fmt = fmt
        self.max_tokens = max_tokens
        vocab = len(self.tokenizer)
        self.token_texts = [self.tokenizer.decode([i]) for i in range(vocab)]
        self.eos_id = self.tokenizer.eos_token_id
        self.adapted = False  # a test-time adapter is attached to ``model``
        self.count_tokens = model_tools.token_counter(self.tokenizer)  # as training counts them

    def ids(self, text: str) -> list[int]:
        return model_tools.token_ids(self.tokenizer, text)

    def with_model(self, model) -> ModelSession:
        """The same session around another model: the base wrapped to bias or count its passes, say."""
        return ModelSession(replace(self.loaded, model=model), self.fmt, self.max_tokens, self.formats)

    def attach_adapter(self, r: int, alpha: int, seed: int) -> None:
        """A fresh LoRA on the model, of the loaded backend; ``remove_adapter`` undoes it exactly."""
        # unsloth's get_peft_model (its fused LoRA kernels) on unsloth. peft's unload restores the base (tests
        # check it, 4-bit included), and unsloth's patched layers fall back to the plain weights once it is gone
        self.model = model_tools.add_lora(self.model, r=r, alpha=alpha, seed=seed, backend=self.loaded.backend)
        self.adapted = True

    def train_adapter(self, data: ArcDataset, config: TrainConfig, description: str) -> None:
        """Train the attached adapter on ``data`` (in its order) with the session's format and context."""
        if not self.adapted:
            raise ValueError("no adapter attached: call attach_adapter first")
        collate = model_tools.MaskingCollator(self.tokenizer, mask_first_n_outputs=config.mask_first_n_outputs,
                                              max_length=self.max_tokens, add_special_tokens=False)
        train(self.model, collate, data, self.fmt, config, description=description)

    def adapter_folded(self) -> AbstractContextManager[bool]:
        """A block that runs with the attached adapter folded into the base weights (on a CPU, where that saves
        time; ``model_tools.adapter_folded``), the base restored exactly after it; yields whether it folded."""
        return model_tools.adapter_folded(self.model) if self.adapted else nullcontext(False)

    def remove_adapter(self) -> None:
        """Back to the base model; nothing to do when no adapter is attached."""
        if self.adapted:
            self.model = model_tools.remove_adapter(self.model)
            self.adapted = False

