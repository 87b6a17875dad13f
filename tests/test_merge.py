"""Tests of the merge command: options checked before any model loads, and a merge that keeps the logits."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from training_code import merge, model_tools
from training_code.formats import ArchitectsFormat

FMT = ArchitectsFormat(eos="</s>")
EXTRA = "xyz!?#"  # characters of the base model that the adapter's shrunk vocabulary drops


@pytest.fixture
def saved(tmp_path):
    """A tiny base model folder and an adapter trained (here: perturbed) on its shrunk vocabulary."""
    base = model_tools.build_tiny_model(FMT.alphabet + EXTRA)
    model_tools.save_merged(base.model, base.tokenizer, tmp_path / "base")
    model, tokenizer, _ = model_tools.shrink_vocabulary(base.model, base.tokenizer, FMT.alphabet)
    peft_model = model_tools.add_lora(model, r=4, train_embeddings=True)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    model_tools.save_adapter(peft_model, tmp_path / "adapter", tokenizer)
    return tmp_path / "base", tmp_path / "adapter", peft_model, tokenizer


def test_the_merged_folder_loads_with_transformers_and_keeps_the_logits(tmp_path, saved):
    base, adapter, peft_model, tokenizer = saved
    assert model_tools.adapter_alphabet(adapter) == "".join(sorted(FMT.alphabet, key=tokenizer.get_vocab().get))
    status = merge.main(["--base", str(base), "--adapter", str(adapter), "--out", str(tmp_path / "merged"),
                         "--dtype", "float32"])
    assert status == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", local_files_only=True)
    merged_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged", local_files_only=True)
    assert merged_tokenizer.get_vocab() == tokenizer.get_vocab()
    ids = torch.tensor([tokenizer("ABI01\n2\n+/-=O1\n0\n</s>")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, peft_model(ids).logits, atol=1e-4, rtol=0)


def bad_options(tmp_path, base, adapter):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    return [
        ([], "--base is required"),
        (["--base", str(tmp_path / "nowhere")], "--adapter is required"),
        (["--base", str(tmp_path / "nowhere"), "--adapter", str(adapter), "--out", "o"], "--base .*nowhere"),
        (["--base", str(adapter), "--adapter", str(adapter), "--out", "o"], "holds a LoRA adapter"),
        (["--base", str(base), "--adapter", str(base), "--out", "o"], "--adapter .*adapter_config.json missing"),
        (["--base", str(base), "--adapter", str(adapter), "--out", str(adapter)], "is the base or the adapter"),
        (["--base", str(base), "--adapter", str(adapter), "--out", str(notes)], "other things in it"),
        (["--base", str(base), "--adapter", str(adapter), "--out", "o", "--dtype", "int4"],
         "--dtype 'int4'.*bfloat16, float16, float32"),
    ]


def test_bad_options_stop_with_status_2_before_any_model_loads(tmp_path, saved, monkeypatch, capsys):
    base, adapter, _, _ = saved

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(model_tools, "load_model", no_loading)
    monkeypatch.setattr(model_tools, "merge_saved_adapter", no_loading)
    for argv, message in bad_options(tmp_path, base, adapter):
        assert merge.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("merge: ") and re.search(message, err), (argv, err)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_an_adapter_without_its_tokenizer_is_refused(tmp_path, saved, capsys):
    base, adapter, _, _ = saved
    (adapter / "tokenizer_config.json").unlink()
    assert merge.main(["--base", str(base), "--adapter", str(adapter), "--out", str(tmp_path / "m")]) == 2
    assert "tokenizer_config.json missing" in capsys.readouterr().err


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as stop:
        merge.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--base", "--adapter", "--out", "--dtype", "--models-dir"))
