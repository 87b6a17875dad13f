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


class Nudged(torch.nn.Module):
    """A model whose logits get a fixed bias per token."""

    def __init__(self, inner: torch.nn.Module, bias: torch.Tensor):
        super().__init__()
        self.inner, self.bias = inner, bias

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        out.logits = out.logits + self.bias
        return out


def perturbed_session(seed: int = 1) -> ModelSession:
    """A session with an attached adapter whose B matrices are not zero, so that it changes the model's output."""
    s = session()
    s.attach_adapter(r=2, alpha=4, seed=0)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in s.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return s


def test_a_folded_adapter_gives_the_same_nlls_and_leaves_the_base_weights_as_they_were():
    from peft.tuners.lora import LoraLayer

    from training_code.inference_tools import dfs_decode_many, reply_nlls

    s = perturbed_session()
    layers = [m for m in s.model.modules() if isinstance(m, LoraLayer)]
    weights = [m.get_base_layer().weight for m in layers]
    originals = [w.data_ptr() for w in weights]
    copies = [w.detach().clone() for w in weights]
    rendered = FMT.render([], np.array([[1, 0], [0, 1]]), np.array([[0, 1], [1, 0]]))
    prompt = s.ids(rendered.prompt)
    replies = [s.ids(rendered.reply), s.ids("0\n</s>"), s.ids("010\n101\n011\n</s>")]
    kwargs = dict(eos_id=s.eos_id, token_texts=s.token_texts, checker=s.fmt.reply_checker(), min_prob=1e-3,
                  max_new_tokens=8)
    # the random model's logits nudged toward small grids of 0 and 1, so that the searches find candidates
    bias = torch.zeros(len(s.token_texts))
    for text, value in (("0", 4.0), ("1", 3.0), ("\n", 3.0), ("</s>", 3.0)):
        bias[s.token_texts.index(text)] = value
    nudged = Nudged(s.model, bias)

    def outputs():
        candidates = dfs_decode_many(nudged, [prompt, prompt[2:]], **kwargs)
        return reply_nlls(s.model, prompt, replies), [[(c.tokens, c.nll) for c in cands] for cands in candidates]

    plain_nlls, plain_found = outputs()
    with s.adapter_folded() as folded:
        assert folded and all(m.merged for m in layers)
        assert all(not torch.equal(w, c) for w, c in zip(weights, copies, strict=True))  # the sums are in use
        assert all(w.data_ptr() != o for w, o in zip(weights, originals, strict=True))
        folded_nlls, folded_found = outputs()
    np.testing.assert_allclose(folded_nlls, plain_nlls, atol=1e-4, rtol=0)
    assert [[t for t, _ in cands] for cands in folded_found] == [[t for t, _ in cands] for cands in plain_found]
    assert any(plain_found)  # the comparison covers candidates, not only empty searches
    for cands, plain in zip(folded_found, plain_found, strict=True):
        np.testing.assert_allclose([n for _, n in cands], [n for _, n in plain], atol=1e-4, rtol=0)
    # afterwards the base weights are back in their own memory, bit for bit, and the adapter runs unfolded again
    assert [w.data_ptr() for w in weights] == originals
    assert all(torch.equal(w, c) for w, c in zip(weights, copies, strict=True))
    assert not any(m.merged for m in layers)
    assert outputs() == (plain_nlls, plain_found)


def test_folding_restores_the_base_when_the_block_fails_and_refuses_weights_that_are_not_finite():
    s = perturbed_session()
    base = {n: p.detach().clone() for n, p in s.model.named_parameters() if "lora_" not in n}

    def base_unchanged() -> bool:
        now = {n: p for n, p in s.model.named_parameters() if "lora_" not in n}
        return now.keys() == base.keys() and all(torch.equal(now[n], p) for n, p in base.items())

    with pytest.raises(RuntimeError, match="a failing block"), s.adapter_folded() as folded:
        assert folded and not base_unchanged()
        raise RuntimeError("a failing block")
    assert base_unchanged()
    with torch.no_grad():
        next(p for n, p in s.model.named_parameters() if "lora_B" in n).fill_(float("nan"))
    with s.adapter_folded() as folded:
        assert not folded and base_unchanged()
    assert base_unchanged()
    s.remove_adapter()
    with s.adapter_folded() as folded:  # no adapter: nothing to fold
        assert not folded
