"""Tests of the model layer: loading, vocabulary shrinking, the masking collator and LoRA.

Fast tests run on tiny randomly initialised Llamas (``build_tiny_model``). Tests marked ``slow``
use the bundled SmolLM2-135M GGUF and are skipped when it is absent (``make
models/SmolLM2-135M-Instruct.Q4_1.gguf`` provides it).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_data import needs_smollm2
from transformers import AutoModelForCausalLM, AutoTokenizer

from training_code import model_tools as mt
from training_code.formats import ArchitectsFormat, RenderedTask
from training_code.model_tools import (
    IGNORE_INDEX,
    MaskingCollator,
    add_lora,
    build_tiny_model,
    load_adapter,
    load_model,
    merge_adapter,
    remove_adapter,
    save_adapter,
    save_merged,
    shrink_for_format,
    shrink_vocabulary,
)

FMT = ArchitectsFormat(eos="</s>")
EXTRA = "xyz!?#"  # characters of the tiny model's vocabulary that shrinking drops


def logits_of(model: torch.nn.Module, ids: list[list[int]]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids, dtype=torch.long)).logits


def random_texts(alphabet: str, n: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    chars = list(alphabet)
    return ["".join(rng.choice(chars, size=length)) for _ in range(n)]


def small_task(rng: np.random.Generator, n_train: int = 2) -> tuple[list[tuple[np.ndarray, np.ndarray]], ...]:
    def grid() -> np.ndarray:
        return rng.integers(0, 10, size=(int(rng.integers(1, 4)), int(rng.integers(1, 4))), dtype=np.uint8)

    train = [(grid(), grid()) for _ in range(n_train)]
    return train, grid(), grid()


def perturb_lora(model: torch.nn.Module, seed: int = 1, scale: float = 0.05) -> None:
    """Make every LoRA matrix and every fully trained copy non-zero, reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)


# ---------------------------------------------------------------------------------------------
# The tiny model


def test_tiny_model_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = build_tiny_model(FMT.alphabet, seed=3)
    b = build_tiny_model(FMT.alphabet, seed=3)
    c = build_tiny_model(FMT.alphabet, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    for (name, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.equal(p, q), name


def test_tiny_tokenizer_is_one_token_per_character():
    tiny = build_tiny_model(FMT.alphabet)
    tok = tiny.tokenizer
    text = "ABI01\n2+/-=O9\n</s>"
    enc = tok(text, return_offsets_mapping=True)
    assert len(enc["input_ids"]) == len(text) - len("</s>") + 1
    assert enc["input_ids"][-1] == tok.eos_token_id == tiny.model.config.eos_token_id
    assert tok.decode(enc["input_ids"]) == text
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2)
    with pytest.raises(ValueError, match="also alphabet characters"):
        build_tiny_model("01<", eos="<")


# ---------------------------------------------------------------------------------------------
# Shrinking


@pytest.mark.parametrize("tied", [False, True])
def test_shrink_keeps_logits_of_kept_tokens(tied):
    original = build_tiny_model(FMT.alphabet + EXTRA, tie_embeddings=tied)
    shrunk = build_tiny_model(FMT.alphabet + EXTRA, tie_embeddings=tied)
    model, tok, mapping = shrink_vocabulary(shrunk.model, shrunk.tokenizer, FMT.alphabet)

    assert len(tok) == len(mapping) == model.config.vocab_size == len(FMT.alphabet) + 3
    assert model.get_input_embeddings().weight.shape[0] == len(mapping)
    assert model.get_output_embeddings().weight.shape[0] == len(mapping)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
    for role in ("bos", "eos", "pad"):
        old = getattr(original.tokenizer, f"{role}_token_id")
        assert getattr(tok, f"{role}_token_id") == mapping.old_to_new[old]
        assert getattr(model.config, f"{role}_token_id") == mapping.old_to_new[old]
        assert getattr(model.generation_config, f"{role}_token_id") == mapping.old_to_new[old]

    texts = random_texts(FMT.alphabet, n=3, length=40)
    new_ids = [tok(t)["input_ids"] for t in texts]
    old_ids = [original.tokenizer(t)["input_ids"] for t in texts]
    assert new_ids == [[mapping.old_to_new[i] for i in ids] for ids in old_ids]
    expected = logits_of(original.model, old_ids)[..., list(mapping.old_ids)]
    torch.testing.assert_close(logits_of(model, new_ids), expected, atol=1e-5, rtol=0)


def test_shrunk_model_saves_and_reloads_with_plain_transformers(tmp_path):
    tiny = build_tiny_model(FMT.alphabet + EXTRA, tie_embeddings=True)
    model, tok, _ = shrink_vocabulary(tiny.model, tiny.tokenizer, FMT.alphabet)
    save_merged(model, tok, tmp_path / "shrunk")
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path / "shrunk", local_files_only=True)
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "shrunk", local_files_only=True)
    text = FMT.render(*small_task(np.random.default_rng(0))).text
    assert tok2(text)["input_ids"] == tok(text)["input_ids"]
    assert (tok2.eos_token, tok2.pad_token, tok2.bos_token) == (tok.eos_token, tok.pad_token, tok.bos_token)
    ids = [tok(text)["input_ids"]]
    torch.testing.assert_close(logits_of(model2, ids), logits_of(model, ids), atol=1e-6, rtol=0)


def test_shrink_rejects_characters_that_are_not_single_tokens():
    tiny = build_tiny_model("0123\n")
    with pytest.raises(ValueError, match=r"not single tokens.*'a'.*'b'"):
        shrink_vocabulary(tiny.model, tiny.tokenizer, "01ab")


def test_shrink_keeps_the_special_tokens_the_tokenizer_adds():
    tiny = build_tiny_model(FMT.alphabet + EXTRA)
    vocab = tiny.tokenizer.get_vocab()
    specials = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    tiny.tokenizer = mt._char_tokenizer(vocab, specials, prefix=["<s>"])  # a tokenizer that adds bos
    model, tok, mapping = shrink_vocabulary(tiny.model, tiny.tokenizer, FMT.alphabet)
    assert tok("0")["input_ids"] == [tok.bos_token_id, tok.convert_tokens_to_ids("0")]
    assert tok("0", add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids("0")]
    rendered = FMT.render(*small_task(np.random.default_rng(1)))
    batch = MaskingCollator(tok)([rendered])
    assert batch["input_ids"][0, 0] == tok.bos_token_id and batch["labels"][0, 0] == IGNORE_INDEX


def test_shrink_for_format_checks_eos_and_refingerprints():
    tiny = build_tiny_model(FMT.alphabet + EXTRA)
    with pytest.raises(ValueError, match="eos"):
        shrink_for_format(tiny, ArchitectsFormat(eos="<|im_end|>"))
    before = tiny.fingerprint
    shrunk, mapping = shrink_for_format(tiny, FMT)
    assert shrunk.fingerprint != before
    assert set(shrunk.tokenizer.get_vocab()) == set(FMT.alphabet) | {"<s>", "</s>", "<pad>"}
    assert len(mapping) == len(shrunk.tokenizer)


# ---------------------------------------------------------------------------------------------
# The masking collator


@pytest.fixture(scope="module")
def tiny_fmt():
    return build_tiny_model(FMT.alphabet)


def labelled_chars(tok, task, labels):
    """Character positions of ``task.text`` whose tokens carry loss."""
    enc = tok(task.text, return_offsets_mapping=True)
    chars: set[int] = set()
    for (start, end), label, token in zip(enc["offset_mapping"], labels, enc["input_ids"]):
        if label != IGNORE_INDEX:
            assert label == token
            chars.update(range(start, end))
    return chars


def test_collator_labels_exactly_the_output_grids_and_their_closing(tiny_fmt):
    tok = tiny_fmt.tokenizer
    task = FMT.render(*small_task(np.random.default_rng(2), n_train=3))
    assert len(task.output_spans) == 4
    enc = MaskingCollator(tok).encode(task)
    span_chars = {i for s, e in task.output_spans for i in range(s, e)}
    assert labelled_chars(tok, task, enc.labels) == span_chars
    # every span ends with "\n" + eos and both carry loss
    for _, end in task.output_spans:
        assert task.text[end - len("\n</s>"):end] == "\n</s>"
    labelled_ids = [i for i in enc.labels if i != IGNORE_INDEX]
    assert labelled_ids.count(tok.eos_token_id) == 4
    assert labelled_ids[-2:] == [tok.convert_tokens_to_ids("\n"), tok.eos_token_id]
    # the reply is the last span
    assert task.output_spans[-1] == (len(task.prompt), len(task.text))


def test_collator_masks_the_first_outputs(tiny_fmt):
    tok = tiny_fmt.tokenizer
    task = FMT.render(*small_task(np.random.default_rng(3), n_train=2))
    enc = MaskingCollator(tok, mask_first_n_outputs=1).encode(task)
    later = {i for s, e in task.output_spans[1:] for i in range(s, e)}
    assert labelled_chars(tok, task, enc.labels) == later


def test_collator_pads_right(tiny_fmt):
    tok = tiny_fmt.tokenizer
    rng = np.random.default_rng(4)
    tasks = [FMT.render(*small_task(rng, n_train=1)), FMT.render(*small_task(rng, n_train=3))]
    collator = MaskingCollator(tok)
    lengths = [len(collator.encode(t).input_ids) for t in tasks]
    batch = collator(tasks)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, max(lengths))
    for row, n in enumerate(lengths):
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (max(lengths) - n)
        assert (batch["input_ids"][row, n:] == tok.pad_token_id).all()
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
        assert batch["labels"][row, :n].tolist() == collator.encode(tasks[row]).labels
    padded = MaskingCollator(tok, pad_to_multiple_of=64)(tasks)
    assert padded["input_ids"].shape[1] % 64 == 0 and padded["input_ids"].shape[1] >= max(lengths)
    assert all(t.dtype == torch.long for t in batch.values())


def test_collator_never_truncates_or_drops(tiny_fmt):
    tok = tiny_fmt.tokenizer
    task = FMT.render(*small_task(np.random.default_rng(5)))
    n = len(MaskingCollator(tok).encode(task).input_ids)
    MaskingCollator(tok, max_length=n)([task])
    with pytest.raises(ValueError, match="longer than max_length"):
        MaskingCollator(tok, max_length=n - 1)([task])
    with pytest.raises(ValueError, match="not in the vocabulary.*'~'"):
        MaskingCollator(tok).encode(RenderedTask("I0~", "1\n</s>", ((3, 9),)))
    with pytest.raises(ValueError, match="across the boundary"):
        MaskingCollator(tok).encode(RenderedTask("I0", "1\n</s>", ((2, 6),)))  # cuts "</s>"


# ---------------------------------------------------------------------------------------------
# LoRA


@pytest.mark.parametrize(("tied", "train_embeddings"), [(False, False), (False, True), (True, True)])
def test_merged_adapter_gives_the_same_logits(tmp_path, tied, train_embeddings):
    tiny = build_tiny_model(FMT.alphabet + EXTRA, tie_embeddings=tied)
    model, tok, _ = shrink_vocabulary(tiny.model, tiny.tokenizer, FMT.alphabet)
    peft_model = add_lora(model, r=4, alpha=8, train_embeddings=train_embeddings)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and not any("lm_head.lora" in n for n in trainable)
    assert any("embed_tokens" in n for n in trainable) == train_embeddings
    perturb_lora(peft_model)
    ids = [tok(t)["input_ids"] for t in random_texts(FMT.alphabet, n=2, length=30, seed=7)]
    with peft_model.disable_adapter():
        before = logits_of(peft_model, ids)
    unmerged = logits_of(peft_model, ids)
    assert not torch.allclose(unmerged, before, atol=1e-3)  # the adapter does something

    save_adapter(peft_model, tmp_path / "adapter", tok)
    assert not (tmp_path / "adapter" / "README.md").exists()  # no model card of empty placeholders
    fresh = build_tiny_model(FMT.alphabet + EXTRA, tie_embeddings=tied)
    base, _, _ = shrink_vocabulary(fresh.model, fresh.tokenizer, FMT.alphabet)
    reloaded = load_adapter(base, tmp_path / "adapter")
    torch.testing.assert_close(logits_of(reloaded, ids), unmerged, atol=1e-5, rtol=0)

    merged = merge_adapter(peft_model)
    assert type(merged).__name__ == "LlamaForCausalLM"
    torch.testing.assert_close(logits_of(merged, ids), unmerged, atol=1e-4, rtol=0)

    save_merged(merged, tok, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", local_files_only=True)
    torch.testing.assert_close(logits_of(plain, ids), unmerged, atol=1e-4, rtol=0)


@pytest.mark.parametrize("train_embeddings", [False, True])
def test_removed_adapter_leaves_the_base_as_it_was(train_embeddings):
    tiny = build_tiny_model(FMT.alphabet, tie_embeddings=train_embeddings)
    ids = [tiny.tokenizer("ABI01\n+/-=O1\n")["input_ids"]]
    before = logits_of(tiny.model, ids)
    peft_model = add_lora(tiny.model, r=4, train_embeddings=train_embeddings)
    perturb_lora(peft_model)
    assert not torch.allclose(logits_of(peft_model, ids), before, atol=1e-4)
    base = remove_adapter(peft_model)
    assert type(base).__name__ == "LlamaForCausalLM" and remove_adapter(base) is base
    torch.testing.assert_close(logits_of(base, ids), before, atol=0, rtol=0)
    assert mt.fingerprint_of(base, tiny.tokenizer) == tiny.fingerprint
    # test-time training repeats the cycle on the same base, task after task
    again = add_lora(base, r=4, train_embeddings=train_embeddings, seed=1)
    perturb_lora(again, seed=2)
    torch.testing.assert_close(logits_of(remove_adapter(again), ids), before, atol=0, rtol=0)


@pytest.mark.parametrize("tied", [False, True])
def test_lora_reaches_every_linear_layer_with_its_settings(tied):
    tiny = build_tiny_model(FMT.alphabet, tie_embeddings=tied)
    linear = {name for name, m in tiny.model.named_modules()
              if isinstance(m, torch.nn.Linear) and m is not tiny.model.get_output_embeddings()}
    assert {n.rsplit(".", 1)[-1] for n in linear} >= {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                      "up_proj", "down_proj"}
    peft_model = add_lora(tiny.model, r=4, alpha=8, dropout=0.05, use_rslora=True, train_embeddings=True)
    config = peft_model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout, config.use_rslora) == (4, 8, 0.05, True)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    for name in linear:  # every linear layer but the head carries LoRA
        assert any(t.endswith(f"{name}.lora_A.default.weight") for t in trainable), name
    head_trained = any("lm_head" in n and "lora" not in n for n in trainable)
    assert head_trained == (not tied)  # an untied head is trained in full; a tied one through the embedding
    assert any("embed_tokens" in n for n in trainable)
    narrow = add_lora(build_tiny_model(FMT.alphabet).model, r=2, target=["q_proj", "v_proj"])
    lora_layers = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in narrow.named_parameters() if "lora_A" in n}
    assert lora_layers == {"q_proj", "v_proj"}


def test_unsloths_lora_writes_its_offloaded_buffers_outside_the_working_directory(tmp_path, monkeypatch):
    calls = []

    class FastLanguageModel:  # records the call as unsloth's get_peft_model would receive it
        @staticmethod
        def get_peft_model(model, **kwargs):
            calls.append(kwargs)
            return model

    monkeypatch.setitem(sys.modules, "unsloth", types.SimpleNamespace(FastLanguageModel=FastLanguageModel))
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # once per task in test-time training
        add_lora(build_tiny_model(FMT.alphabet).model, r=2, train_embeddings=True, backend="unsloth")
    folders = {Path(call["temporary_location"]) for call in calls}
    assert len(calls) == 2 and len(folders) == 1
    folder = folders.pop()
    assert folder.is_dir() and folder.is_absolute() and tmp_path not in folder.parents
    assert list(tmp_path.iterdir()) == []


def test_add_lora_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = add_lora(build_tiny_model(FMT.alphabet).model, r=4, seed=5)
    b = add_lora(build_tiny_model(FMT.alphabet).model, r=4, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), name


def test_load_adapter_checks_the_vocabulary(tmp_path):
    tiny = build_tiny_model(FMT.alphabet + EXTRA)
    model, tok, _ = shrink_vocabulary(tiny.model, tiny.tokenizer, FMT.alphabet)
    save_adapter(add_lora(model, r=2), tmp_path / "adapter", tok)
    with pytest.raises(ValueError, match="same alphabet"):
        load_adapter(build_tiny_model(FMT.alphabet + EXTRA).model, tmp_path / "adapter")


# ---------------------------------------------------------------------------------------------
# Loading and fingerprints


def test_load_model_from_a_local_directory(tmp_path):
    tiny = build_tiny_model(FMT.alphabet)
    save_merged(tiny.model, tiny.tokenizer, tmp_path / "tiny")
    loaded = load_model(tmp_path / "tiny", backend="auto")
    assert loaded.backend == "transformers" or torch.cuda.is_available()
    again = load_model(tmp_path / "tiny", backend="transformers", dtype="float32")
    assert loaded.fingerprint == again.fingerprint
    ids = [tiny.tokenizer("ABI01\n")["input_ids"]]
    torch.testing.assert_close(logits_of(again.model, ids), logits_of(tiny.model, ids), atol=1e-6, rtol=0)
    with torch.no_grad():
        next(again.model.parameters()).add_(1.0)
    assert again.refingerprinted().fingerprint != loaded.fingerprint
    assert load_model(tmp_path / "tiny", dtype="bfloat16").model.dtype == torch.bfloat16


def test_load_model_logs_its_backend_and_sets_the_sequence_length(tmp_path, caplog):
    tiny = build_tiny_model(FMT.alphabet)
    save_merged(tiny.model, tiny.tokenizer, tmp_path / "tiny")
    with caplog.at_level("INFO", logger=mt.__name__):
        loaded = load_model(tmp_path / "tiny", max_seq_length=4096)
        forced = load_model(tmp_path / "tiny", backend="transformers", max_seq_length=512)
    assert loaded.max_seq_length == loaded.tokenizer.model_max_length == 4096
    assert forced.tokenizer.model_max_length == 512
    if not torch.cuda.is_available():
        assert "model backend: transformers (no CUDA device)" in caplog.text
    assert "model backend: transformers (forced)" in caplog.text
    assert f"loaded {tmp_path / 'tiny'} (transformers" in caplog.text


def test_4bit_by_default_only_where_it_can_load(tmp_path, monkeypatch, caplog):
    folder, gguf = tmp_path / "model", tmp_path / "model.gguf"
    assert not mt.default_4bit("transformers", folder, cuda=False)  # a CPU: never
    assert mt.default_4bit("unsloth", folder, cuda=True)
    real_find_spec = importlib.util.find_spec
    for installed in (True, False):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, installed=installed: (
            (object() if installed else None) if name == "bitsandbytes" else real_find_spec(name, *a)))
        with caplog.at_level("INFO", logger=mt.__name__):
            assert mt.default_4bit("transformers", folder, cuda=True) == installed
    assert "bitsandbytes is not installed" in caplog.text
    with caplog.at_level("INFO", logger=mt.__name__):
        assert not mt.default_4bit("transformers", gguf, cuda=True)
    assert "GGUF files load de-quantized" in caplog.text


def test_fingerprint_of_an_adapter_on_a_frozen_base():
    tiny = build_tiny_model(FMT.alphabet)
    peft_model = add_lora(tiny.model, r=2)
    a = mt.fingerprint_of(peft_model, tiny.tokenizer, base=tiny.fingerprint)
    perturb_lora(peft_model)
    b = mt.fingerprint_of(peft_model, tiny.tokenizer, base=tiny.fingerprint)
    assert a != b and len(a) == 64


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="never fetched"):
        load_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown backend"):
        mt.choose_backend("vllm")
    tiny = build_tiny_model(FMT.alphabet)
    save_merged(tiny.model, tiny.tokenizer, tmp_path / "tiny")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            load_model(tmp_path / "tiny", backend="unsloth")


def test_4bit_loads_on_a_cpu_and_keeps_its_bytes_through_passes_and_a_lora_cycle(tmp_path):
    tiny = build_tiny_model(FMT.alphabet)
    save_merged(tiny.model, tiny.tokenizer, tmp_path / "tiny")
    four = load_model(tmp_path / "tiny", backend="transformers", load_in_4bit=True)
    kinds = {type(m).__name__ for m in four.model.modules()}
    assert "Linear4bit" in kinds and mt.is_quantized(four.model) and not mt.is_quantized(tiny.model)
    assert four.fingerprint != tiny.fingerprint
    ids = [four.tokenizer("ABI01\n+/-=O1\n")["input_ids"]]
    before = logits_of(four.model, ids)
    # 4 bits is close to the full model, not equal to it
    assert 0 < float((before - logits_of(tiny.model, ids)).abs().max()) < 0.5
    peft_model = add_lora(four.model, r=4)
    assert any(type(m).__module__ == "peft.tuners.lora.bnb" for m in peft_model.modules())
    perturb_lora(peft_model)
    assert not torch.allclose(logits_of(peft_model, ids), before, atol=1e-4)
    with pytest.raises(ValueError, match="4-bit"):
        merge_adapter(peft_model)
    adapted = logits_of(peft_model, ids)
    with mt.adapter_folded(peft_model) as folded:  # 4-bit weights cannot take the sum: the adapter runs unfolded
        assert not folded
        torch.testing.assert_close(logits_of(peft_model, ids), adapted, atol=0, rtol=0)
    base = remove_adapter(peft_model)
    torch.testing.assert_close(logits_of(base, ids), before, atol=0, rtol=0)
    # after passes in inference mode (where bitsandbytes would repack the weights on a CPU) and a LoRA cycle
    assert mt.fingerprint_of(base, four.tokenizer) == four.fingerprint


def test_gguf_lookup_prefers_an_installed_package_and_explains_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mt, "_installed_package_gguf", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"make models/SmolLM2-135M-Instruct\.Q4_1\.gguf"):
        mt.find_smollm2_gguf(tmp_path)
    (tmp_path / mt.SMOLLM2_GGUF).write_bytes(b"")
    assert mt.find_smollm2_gguf(tmp_path) == tmp_path / mt.SMOLLM2_GGUF
    monkeypatch.undo()

    site = tmp_path / "site"
    package = site / mt.SMOLLM2_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the package code must not run')\n")
    (package / mt.SMOLLM2_GGUF).write_bytes(b"")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert mt.find_smollm2_gguf(tmp_path / "elsewhere") == package / mt.SMOLLM2_GGUF


def test_directories_are_written_atomically(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with mt._atomic_dir(target, replace=True) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []  # neither a target nor a temporary directory is left
    with mt._atomic_dir(target, replace=True) as tmp:
        (tmp / "a.txt").write_text("first")
    with mt._atomic_dir(target, replace=False) as tmp:  # a conversion someone else finished first
        (tmp / "a.txt").write_text("second")
    assert (target / "a.txt").read_text() == "first"
    with mt._atomic_dir(target, replace=True) as tmp:  # a new adapter or merged model
        (tmp / "b.txt").write_text("third")
    assert [p.name for p in target.iterdir()] == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ---------------------------------------------------------------------------------------------
# SmolLM2 (slow)




@pytest.fixture(scope="module")
def smol():
    # the production path: converts the GGUF into models/smollm2-135m on first use (about 25 s), then reuses it
    return load_model(mt.SMOLLM2_NAME, backend="transformers", dtype="float32")


@pytest.fixture(scope="module")
def smol_shrunk(smol):
    fmt = ArchitectsFormat(eos=smol.tokenizer.eos_token)
    shrunk, mapping = shrink_for_format(copied(smol), fmt)
    return fmt, shrunk, mapping


def copied(loaded):
    """A LoadedModel whose model can be shrunk in place without touching ``loaded``."""
    return dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))


@pytest.mark.slow
@needs_smollm2
def test_smollm2_tokenizer_facts(smol):
    tok = smol.tokenizer
    pieces = tok.convert_ids_to_tokens(tok("0123\n", add_special_tokens=False)["input_ids"])
    assert pieces == ["0", "1", "2", "3", "Ċ"]  # one token per digit and per newline ("Ċ" is "\n")
    assert len(tok("\n\n", add_special_tokens=False)["input_ids"]) == 1  # but two newlines merge
    assert tok.convert_ids_to_tokens(tok("+/-=O", add_special_tokens=False)["input_ids"]) == ["+", "/-", "=", "O"]
    assert tok("0")["input_ids"] == tok("0", add_special_tokens=False)["input_ids"]  # no bos added
    # the GGUF's own metadata (eos=pad=2), not transformers' swapped reading of it
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|im_end|>", "<|im_start|>")
    assert smol.model.config.eos_token_id == tok.eos_token_id == 2
    assert not hasattr(smol.model.config, "quantization_config")


@pytest.mark.slow
@needs_smollm2
def test_smollm2_shrunk_logits_match(smol, smol_shrunk):
    fmt, shrunk, mapping = smol_shrunk
    assert len(mapping) == len(fmt.alphabet) + 3  # <|endoftext|> (unk), <|im_start|> (bos), <|im_end|> (eos, pad)
    texts = [t + fmt.eos for t in random_texts(fmt.alphabet, n=2, length=48, seed=11)]
    new_ids = [shrunk.tokenizer(t)["input_ids"] for t in texts]
    old_ids = [list(np.asarray(mapping.old_ids)[ids]) for ids in new_ids]
    expected = logits_of(smol.model, old_ids)[..., list(mapping.old_ids)]
    torch.testing.assert_close(logits_of(shrunk.model, new_ids), expected, atol=1e-5, rtol=0)


@pytest.mark.slow
@needs_smollm2
def test_smollm2_in_4bit_shrinks_with_plain_embeddings_and_trains_only_its_lora():
    four = load_model(mt.SMOLLM2_NAME, backend="transformers", load_in_4bit=True)
    layers = [m for m in four.model.modules() if type(m).__name__ == "Linear4bit"]
    assert len(layers) == 7 * four.model.config.num_hidden_layers  # q, k, v, o, gate, up, down in every layer
    fmt = ArchitectsFormat(eos=four.tokenizer.eos_token)
    texts = [t + fmt.eos for t in random_texts(fmt.alphabet, n=2, length=32, seed=12)]
    shrunk, mapping = shrink_for_format(copied(four), fmt)
    new_ids = [shrunk.tokenizer(t)["input_ids"] for t in texts]
    old_ids = [list(np.asarray(mapping.old_ids)[ids]) for ids in new_ids]
    # the embedding and the head stay full-precision rows, so shrinking keeps the 4-bit model's logits
    embedding, head = shrunk.model.get_input_embeddings(), shrunk.model.get_output_embeddings()
    assert type(embedding) is torch.nn.Embedding and type(head) is torch.nn.Linear
    assert embedding.weight.shape[0] == len(mapping) and embedding.weight.dtype == torch.float32
    expected = logits_of(four.model, old_ids)[..., list(mapping.old_ids)]
    torch.testing.assert_close(logits_of(shrunk.model, new_ids), expected, atol=1e-4, rtol=0)

    peft_model = add_lora(shrunk.model, r=4, train_embeddings=True)
    wrapped = [m for m in peft_model.modules() if type(m).__module__ == "peft.tuners.lora.bnb"]
    assert len(wrapped) == len(layers)
    batch = MaskingCollator(shrunk.tokenizer, add_special_tokens=False)(
        [RenderedTask(texts[0][:16], texts[0][16:], ((16, len(texts[0])),))])
    peft_model.train()
    peft_model(**batch).loss.backward()
    with_grad = {n for n, p in peft_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all("lora_" in n or "modules_to_save" in n for n in with_grad)
    assert any("lora_B" in n for n in with_grad) and any("embed_tokens" in n for n in with_grad)


@pytest.mark.slow
@needs_smollm2
def test_smollm2_rendered_task_is_the_original_tokens_char_by_char(smol, smol_shrunk):
    fmt, shrunk, mapping = smol_shrunk
    tok = smol.tokenizer
    task = fmt.render(*small_task(np.random.default_rng(6), n_train=2))
    # SmolLM2 merges "/-" (and preprompt letters), so the reference is the text tokenized character
    # by character (the eos text as its one special token)
    reference: list[int] = []
    rest = task.text
    while rest:
        if rest.startswith(fmt.eos):
            reference.append(tok.eos_token_id)
            rest = rest[len(fmt.eos):]
        else:
            (single,) = tok(rest[0], add_special_tokens=False)["input_ids"]
            reference.append(single)
            rest = rest[1:]
    assert shrunk.tokenizer(task.text)["input_ids"] == [mapping.old_to_new[i] for i in reference]
    # grid text alone needs no such care: the original tokenizer already writes one token per cell
    grid_text = task.reply
    assert [mapping.old_to_new[i] for i in tok(grid_text)["input_ids"]] == shrunk.tokenizer(grid_text)["input_ids"]


@pytest.mark.slow
@needs_smollm2
def test_smollm2_shrunk_saves_and_reloads(tmp_path, smol_shrunk):
    fmt, shrunk, _ = smol_shrunk
    save_merged(shrunk.model, shrunk.tokenizer, tmp_path / "smol-shrunk")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "smol-shrunk", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tmp_path / "smol-shrunk", local_files_only=True)
    text = fmt.render(*small_task(np.random.default_rng(8), n_train=1)).text
    assert tok(text)["input_ids"] == shrunk.tokenizer(text)["input_ids"]
    ids = [tok(text)["input_ids"]]
    torch.testing.assert_close(logits_of(model, ids), logits_of(shrunk.model, ids), atol=1e-5, rtol=0)
    # the shrunk vocabulary keeps SmolLM2's unknown token; the collator refuses text that needs it
    assert shrunk.tokenizer.unk_token == "<|endoftext|>"
    with pytest.raises(ValueError, match="unknown token"):
        MaskingCollator(shrunk.tokenizer).encode(RenderedTask("I0~", "1\n" + fmt.eos, ((3, 5 + len(fmt.eos)),)))


@pytest.mark.slow
@needs_smollm2
def test_smollm2_gguf_loads_directly_like_the_converted_checkpoint(smol):
    direct = load_model(mt.find_smollm2_gguf(), backend="transformers", dtype="float32")
    assert direct.tokenizer.eos_token == smol.tokenizer.eos_token
    ids = [smol.tokenizer("I01\n10\n+/-=O", add_special_tokens=False)["input_ids"]]
    torch.testing.assert_close(logits_of(direct.model, ids), logits_of(smol.model, ids), atol=1e-5, rtol=0)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_loading_a_local_model_reaches_for_no_network(tmp_path, no_network):
    tiny = build_tiny_model(FMT.alphabet)
    save_merged(tiny.model, tiny.tokenizer, tmp_path / "tiny")
    loaded = load_model(tmp_path / "tiny")
    shrunk, _ = shrink_for_format(loaded, FMT)
    peft_model = add_lora(shrunk.model, r=2)
    save_adapter(peft_model, tmp_path / "adapter", shrunk.tokenizer)
    fresh, _ = shrink_for_format(load_model(tmp_path / "tiny"), FMT)
    load_adapter(fresh.model, tmp_path / "adapter", tokenizer=fresh.tokenizer)


@pytest.mark.slow
@needs_smollm2
def test_the_bundled_model_is_converted_once_without_network(tmp_path, monkeypatch, no_network):
    models = tmp_path / "models"
    models.mkdir()
    (models / mt.SMOLLM2_GGUF).symlink_to(mt.find_smollm2_gguf())
    conversions = []
    convert = mt.convert_gguf

    def counted(*args, **kwargs):
        conversions.append(args)
        return convert(*args, **kwargs)

    monkeypatch.setattr(mt, "convert_gguf", counted)
    first = mt.resolve_source(mt.SMOLLM2_NAME, models)
    assert first == models / mt.SMOLLM2_NAME and (first / "config.json").is_file() and len(conversions) == 1
    assert sorted(p.name for p in models.iterdir()) == sorted([mt.SMOLLM2_GGUF, mt.SMOLLM2_NAME])  # no temp left
    loaded = load_model(mt.SMOLLM2_NAME, models_dir=models, backend="transformers")
    assert len(conversions) == 1 and loaded.source == mt.SMOLLM2_NAME
    assert loaded.tokenizer.model_max_length == 8192


def test_mode_switches_go_through_unsloths_own_where_the_model_has_them():
    calls = []

    class UnslothLike(torch.nn.Module):
        """What unsloth's get_peft_model leaves: for_training / for_inference bound to the model."""

        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)
            self.for_training = lambda: calls.append("for_training")
            self.for_inference = lambda: calls.append("for_inference")

    model = UnslothLike()
    mt.training_mode(model)
    assert calls == ["for_training"] and model.layer.training
    mt.inference_mode(model)
    assert calls == ["for_training", "for_inference"] and not model.layer.training
    plain = torch.nn.Linear(2, 2)
    mt.training_mode(plain)
    assert plain.training
    mt.inference_mode(plain)
    assert not plain.training


# ---------------------------------------------------------------------------------------------
# The unsloth calls, checked against the pinned unsloth's source (unsloth itself needs a GPU)

REPO = Path(__file__).resolve().parent.parent
# `make test` downloads the pinned wheels there (pip download --no-deps; nothing is installed)
UNSLOTH_SOURCE = Path(sys.prefix) / "unsloth-source"


def unsloth_pins() -> dict[str, str]:
    lines = (REPO / "requirements-gpu.txt").read_text(encoding="utf-8").splitlines()
    return dict(line.split("==") for line in lines if line.startswith(("unsloth==", "unsloth_zoo==")))


class WheelSource:
    """The Python files of a wheel, parsed, without installing or importing anything."""

    def __init__(self, wheel: Path):
        self.zip = zipfile.ZipFile(wheel)

    def tree(self, path: str) -> ast.Module:
        return ast.parse(self.zip.read(path).decode("utf-8"))

    def classes(self, folder: str) -> dict[str, ast.ClassDef]:
        found: dict[str, ast.ClassDef] = {}
        for name in self.zip.namelist():
            if name.startswith(folder) and name.endswith(".py"):
                for node in ast.walk(self.tree(name)):
                    if isinstance(node, ast.ClassDef):
                        found.setdefault(node.name, node)
        return found


def method_of(classes: dict[str, ast.ClassDef], class_name: str, method: str) -> ast.FunctionDef:
    """A class's method as Python resolves it: the class itself, then its bases (depth first, as MRO here)."""
    cls = classes[class_name]
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == method:
            return node
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            try:
                return method_of(classes, base.id, method)
            except KeyError:
                continue
    raise KeyError(f"{class_name}.{method}")


def project_unsloth_calls() -> list[tuple[str, str, int, list[str]]]:
    """Every ``FastLanguageModel.<method>(...)`` call in the project: (file:line, method, positional
    arguments, keyword names)."""
    calls = []
    for path in sorted([*(REPO / "training_code").rglob("*.py"), *(REPO / "benchmarks").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "FastLanguageModel"):
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", node.func.attr, len(node.args),
                              [k.arg for k in node.keywords if k.arg is not None]))
    return calls


def unsloth_wheel(name: str) -> Path:
    version = unsloth_pins()[name]
    wheel = UNSLOTH_SOURCE / f"{name}-{version}-py3-none-any.whl"
    if not wheel.is_file():
        pytest.skip(f"{wheel} absent: `make test` downloads it (pip download --no-deps {name}=={version})")
    return wheel


@pytest.fixture(scope="module")
def unsloth_source() -> tuple[WheelSource, dict[str, ast.ClassDef]]:
    source = WheelSource(unsloth_wheel("unsloth"))
    return source, source.classes("unsloth/models/")


def test_every_unsloth_call_exists_in_the_pinned_unsloth_with_its_arguments(unsloth_source):
    source, classes = unsloth_source
    # `from unsloth import FastLanguageModel` reaches the CUDA loader through these re-exports
    init = ast.dump(source.tree("unsloth/__init__.py"))
    assert "ImportFrom(module='_gpu_init', names=[alias(name='*')], level=1)" in init
    gpu_init = ast.dump(source.tree("unsloth/_gpu_init.py"))
    assert "ImportFrom(module='models', names=[alias(name='*')], level=1)" in gpu_init
    exported = [a.name for n in source.tree("unsloth/models/__init__.py").body
                if isinstance(n, ast.ImportFrom) and n.module == "loader" for a in n.names]
    assert "FastLanguageModel" in exported

    calls = project_unsloth_calls()
    assert {method for _, method, _, _ in calls} >= {"from_pretrained", "get_peft_model", "for_inference"}
    for where, method, positional, keywords in calls:
        function = method_of(classes, "FastLanguageModel", method)
        args = function.args
        named = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
        assert positional <= len(args.posonlyargs) + len(args.args) or args.vararg, (where, method)
        body = ast.unparse(function)
        for keyword in keywords:
            # a keyword unsloth does not name must at least be one its **kwargs reads
            read = args.kwarg is not None and (f"kwargs.get('{keyword}'" in body or f"kwargs['{keyword}']" in body)
            assert keyword in named or read, f"{where}: FastLanguageModel.{method} takes no {keyword!r}"


def test_unsloths_lora_gives_the_mode_switches_and_leaves_forwards_that_need_an_adapter(unsloth_source):
    source, classes = unsloth_source
    get_peft_model = ast.unparse(method_of(classes, "FastLanguageModel", "get_peft_model"))
    assert "FastLlamaModel.patch_peft_model(model" in get_peft_model
    patch = method_of(classes, "FastLlamaModel", "patch_peft_model")
    bound = {t.attr for n in ast.walk(patch) if isinstance(n, ast.Assign) for t in n.targets
             if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "model"}
    # model_tools.training_mode / inference_mode call these when a model has them
    assert {"for_training", "for_inference"} <= bound
    for method in ("for_training", "for_inference"):
        function = method_of(classes, "FastLanguageModel", method)
        assert [a.arg for a in function.args.args][:1] == ["model"]
        assert len(function.args.defaults) >= len(function.args.args) - 1  # callable with the model alone
    # test-time training removes each task's adapter with peft's unload(); unsloth's fused LoRA MLP forwards,
    # set on the base's modules, stay and read `lora_A` first (on an H200 they failed on the bare base), so
    # remove_adapter takes off the instance forwards defined in unsloth's package
    fast_lora = source.tree("unsloth/kernels/fast_lora.py")
    check = next(n for n in ast.walk(fast_lora) if isinstance(n, ast.FunctionDef)
                 and n.name == "_has_activation_fake_quantizer")
    assert "proj.lora_A" in ast.unparse(check)
    assert "apply_lora_mlp_swiglu" in {n.name for n in ast.walk(fast_lora) if isinstance(n, ast.FunctionDef)}


def test_the_unsloth_source_is_the_pinned_version():
    for name, version in unsloth_pins().items():
        wheel = zipfile.ZipFile(unsloth_wheel(name))
        metadata = wheel.read(f"{name}-{version}.dist-info/METADATA").decode()
        assert f"Version: {version}" in metadata.splitlines()


def test_decoders_run_transformers_code_where_unsloth_replaced_it(monkeypatch):
    """unsloth's loader swaps the model classes' methods and the rotary embedding for its own (tuple caches,
    position ids ignored); the decoders' passes must run transformers' code and leave unsloth's in place."""
    from transformers.models.llama import modeling_llama

    from training_code.inference_tools import reply_nlls

    tiny = build_tiny_model(FMT.alphabet)
    model = add_lora(tiny.model, r=4, train_embeddings=True)
    perturb_lora(model)
    prompt, replies = tiny.tokenizer("ABI01\n+/-=O")["input_ids"], [[5, 6, 7], [8], [9, 10]]
    expected = reply_nlls(model, prompt, replies)
    mt.record_transformers_code()  # what _import_unsloth does before unsloth loads a model

    def replaced(self, *args, **kwargs):
        raise AssertionError("unsloth's forward ran in a decoder")

    class IgnoresPositions(torch.nn.Module):
        def forward(self, x, position_ids=None):
            raise AssertionError("unsloth's rotary embedding ran in a decoder")

    theirs = IgnoresPositions()
    for cls in (modeling_llama.LlamaModel, modeling_llama.LlamaAttention, modeling_llama.LlamaForCausalLM):
        monkeypatch.setattr(cls, "forward", replaced)
    monkeypatch.setitem(model.base_model.model.model._modules, "rotary_emb", theirs)
    with pytest.raises(AssertionError, match="unsloth's forward"):
        logits_of(model, [prompt])
    assert reply_nlls(model, prompt, replies) == pytest.approx(expected, abs=1e-5)
    # unsloth's code is back after the decoder: training runs through it
    assert modeling_llama.LlamaModel.forward is replaced and model.base_model.model.model.rotary_emb is theirs
    with mt.transformers_code(model):  # nested: a decoder inside another puts nothing back twice
        with mt.transformers_code(model):
            assert modeling_llama.LlamaModel.forward is not replaced
        assert modeling_llama.LlamaModel.forward is not replaced
    assert modeling_llama.LlamaModel.forward is replaced


def test_compute_device_looks_past_parameters_kept_on_the_cpu():
    tiny = build_tiny_model(FMT.alphabet)
    assert mt.compute_device(tiny.model) == torch.device("cpu")
    meta = torch.nn.Linear(2, 2, device="meta")
    holder = torch.nn.Sequential(meta, tiny.model)
    assert mt.compute_device(holder) == torch.device("cpu")  # meta skipped, CPU found after it


def test_removing_an_unsloth_adapter_takes_its_fused_forwards_off_the_base():
    tiny = build_tiny_model(FMT.alphabet, tie_embeddings=True)
    ids = [tiny.tokenizer("ABI01\n+/-=O1\n")["input_ids"]]
    before = logits_of(tiny.model, ids)
    model = add_lora(tiny.model, r=4, train_embeddings=True)
    mlp = model.base_model.model.model.layers[0].mlp

    def apply_lora_mlp(self, x):  # what unsloth's get_peft_model sets on each MLP: it reads proj.lora_A
        return self.down_proj.lora_A
    apply_lora_mlp.__module__ = "unsloth.kernels.fast_lora"
    mlp.forward = apply_lora_mlp.__get__(mlp)
    own = torch.nn.Identity()
    own.forward = own.forward  # an instance forward of another library's making stays
    mlp.add_module("kept", own)
    base = remove_adapter(model)
    assert "forward" not in base.model.layers[0].mlp.__dict__ and "forward" in own.__dict__
    torch.testing.assert_close(logits_of(base, ids), before, atol=0, rtol=0)
