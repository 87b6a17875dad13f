"""The model session: the test-time adapter it attaches is trained and removed, leaving the base model as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipeline_data import FMT, task, tiny, write_set

from training_code import model_tools
from training_code.arc_loader import ArcDataset
from training_code.model_session import ModelSession
from training_code.training import TrainConfig, leave_one_out_views


def session() -> ModelSession:
    shrunk, _ = model_tools.shrink_for_format(tiny(), FMT)
    return ModelSession(shrunk, FMT, max_tokens=512)


def test_an_attached_adapter_is_trained_and_removal_restores_the_base(tmp_path):
    s = session()
    base = s.model
    before = model_tools.fingerprint_of(base, s.tokenizer)
    dataset = ArcDataset.from_kaggle(write_set(tmp_path, {"aaa": task(1, n_train=3)}))
    data = leave_one_out_views(dataset, ["aaa"], np.random.default_rng(0), views=2)
    s.attach_adapter(r=2, alpha=4, seed=0)
    assert s.adapted and s.model is not base
    adapter = {n: p.detach().clone() for n, p in s.model.named_parameters() if "lora_B" in n}
    s.train_adapter(data, TrainConfig(max_steps=2, batch_size=1, learning_rate=1e-2, progress=False, log_every=0,
                                      on_the_fly=False, max_length=512), description="ttt aaa")
    trained = dict(s.model.named_parameters())
    assert any(not np.allclose(trained[n].detach().numpy(), p.numpy()) for n, p in adapter.items())
    s.remove_adapter()
    assert not s.adapted and s.model is base
    assert model_tools.fingerprint_of(s.model, s.tokenizer) == before


def test_removing_without_an_adapter_keeps_the_model_and_training_needs_one(tmp_path):
    s = session()
    base = s.model
    s.remove_adapter()
    assert s.model is base
    with pytest.raises(ValueError, match="no adapter attached"):
        s.train_adapter(ArcDataset({}), TrainConfig(max_steps=1), description="none")


def test_a_session_around_another_model_keeps_the_tokens_and_leaves_the_first_alone():
    s = session()
    wrapped = torch.nn.Sequential(s.model)  # any module standing in for a wrapper of the model
    other = s.with_model(wrapped)
    assert other.model is wrapped and s.model is not wrapped and other.loaded.model is wrapped
    assert other.token_texts == s.token_texts and other.eos_id == s.eos_id and other.fmt is s.fmt
    assert other.max_tokens == s.max_tokens and other.ids("0\n") == s.ids("0\n")
