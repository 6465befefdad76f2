"""Speed levers as objects (issue #24 item 6): one `Lever` per `speed` key, a new lever is one registry entry, and the
LM-head tile lever works through TRL's public kernel without writing TRL's module constant."""
from collections import Counter

import pytest
import torch
import trl.trainer.utils as trl_utils
from pydantic import Field
from trl import SFTTrainer

from kwanzaa import loader, speed
from kwanzaa.config import SpeedSection
from kwanzaa.speed import FAST, LEVERS, Lever, LeverError
from kwanzaa.trainer import build_trainer
from test_trainer import CONVS, tiny_cfg

torch.set_num_threads(1)
TRL_TILE = trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE  # read once, before any kwanzaa trainer exists


def test_every_speed_key_has_exactly_one_lever():
    names = Counter(lv.name for lv in LEVERS)
    assert set(names) == set(SpeedSection.model_fields), "add a Lever to speed.LEVERS for each new speed key"
    assert all(n == 1 for n in names.values()), names


class ToyFlags(SpeedSection):
    "The speed section with one more key, as a new lever would add it."
    toy: int = Field(0, ge=0)


class ToyMixin:
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.toy_seen = self.speed_flags.toy


def _toy(**kw):
    return Lever("toy", "a throwaway lever", sft_fn=lambda f, kw: {"eval_accumulation_steps": f.toy} if f.toy else {},
                 mixin=ToyMixin, prepare_fn=lambda m: setattr(m, "toy_prepared", True) or m, **kw)


def test_a_new_lever_is_one_registry_entry(tiny_model_dir, tmp_path):
    toy, flags = _toy(), ToyFlags(toy=3)
    levers = LEVERS + (toy,)
    assert toy.on(flags) and not toy.on(ToyFlags())
    assert speed.sft_speed_kwargs(flags, 2, 4, levers=levers)["eval_accumulation_steps"] == 3
    assert "eval_accumulation_steps" not in speed.sft_speed_kwargs(flags, 2, 4)  # not in the registry: not honoured
    assert speed.trainer_class(flags, SFTTrainer) is SFTTrainer
    assert not speed.is_plain(flags, levers)
    cfg = tiny_cfg(tiny_model_dir, "lora")
    pm = loader.attach_lora(loader.load_base_model(cfg), cfg, prepare=speed.preparation(cfg, flags, levers))
    assert pm.get_base_model().toy_prepared is True and loader.trainable_report(pm)["trainable"] > 0
    cls = speed.trainer_class(flags, SFTTrainer, levers)
    assert ToyMixin in cls.__mro__ and cls.speed_flags.toy == 3
    setup = build_trainer(cfg, tmp_path / "toy", CONVS[:4], trainer_class=cls)   # the trainer composes plain levers on it
    assert type(setup.trainer) is cls and setup.trainer.toy_seen == 3


def test_a_lever_that_cannot_run_here_stays_off_or_refuses(capsys):
    off, refuse = _toy(needs=lambda f: "needs a toy GPU"), _toy(needs=lambda f: "needs a toy GPU", unmet="refuse")
    flags = ToyFlags(toy=2)
    assert speed.in_force(flags, LEVERS + (off,)).toy == 0
    assert "kwanzaa: speed.toy=2 stays off here: needs a toy GPU" in capsys.readouterr().err   # said, never silent
    assert speed.trainer_class(flags, SFTTrainer, LEVERS + (off,)) is SFTTrainer
    assert "eval_accumulation_steps" not in speed.sft_speed_kwargs(flags, 1, 1, levers=LEVERS + (off,))
    with pytest.raises(LeverError, match=r"speed\.toy=2 cannot run here: needs a toy GPU"):
        speed.trainer_class(flags, SFTTrainer, LEVERS + (refuse,))


def test_the_levers_arguments_are_the_measured_recipe():
    kw = speed.sft_speed_kwargs(FAST.with_(checkpoint_every=2, offload=True, packing="flat", micro_batch=8), 2, 8)
    assert kw == dict(per_device_train_batch_size=8, gradient_accumulation_steps=2, use_liger_kernel=False,
                      activation_checkpointing=True, logging_nan_inf_filter=False, packing=True, packing_strategy="bfd",
                      padding_free=True,
                      activation_checkpointing_kwargs={"use_reentrant": False, "every_n_layers": 2, "offload": True})
    assert speed.sft_speed_kwargs(FAST.with_(offload=True), 1, 4, checkpointing=False) == dict(
        per_device_train_batch_size=1, gradient_accumulation_steps=4, use_liger_kernel=False,
        activation_checkpointing=False, logging_nan_inf_filter=False)
    assert speed.sft_speed_kwargs(FAST.with_(checkpoint_every=0, packing="rows"), 1, 4)["activation_checkpointing"] is False


def _loss(trainer, batch):
    trainer.model.train()
    return trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=None)


def test_lm_head_tile_is_the_trainers_own_and_scores_like_trl(tiny_model_dir, tmp_path):
    tiled = build_trainer(tiny_cfg(tiny_model_dir, "lora", **{"speed.lm_head_chunk": 256}), tmp_path / "t", CONVS[:4])
    plain = build_trainer(tiny_cfg(tiny_model_dir, "lora"), tmp_path / "p", CONVS[:4])
    assert trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE == TRL_TILE      # TRL's module constant is never written
    assert tiled.trainer.model.get_base_model().forward.lm_head_chunk == 256   # 400-token vocabulary: two tiles
    assert not hasattr(plain.trainer.model.get_base_model().forward, "lm_head_chunk")
    batch = next(iter(tiled.trainer.get_train_dataloader()))
    lt, lp = _loss(tiled.trainer, batch), _loss(plain.trainer, batch)  # LoRA B starts at 0: the same function
    assert abs(lt.item() - lp.item()) <= 1e-3 * abs(lp.item()), (lt.item(), lp.item())
    m_t, m_p = tiled.trainer._metrics["train"], plain.trainer._metrics["train"]
    assert m_t["mean_token_accuracy"][-1] == pytest.approx(m_p["mean_token_accuracy"][-1], abs=1e-6)
    assert m_t["entropy"][-1] == pytest.approx(m_p["entropy"][-1], rel=1e-3)
    lt.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in tiled.trainer.model.named_parameters()
               if "lora_B" in n)


def test_lm_head_tile_refuses_a_model_that_scales_its_logits(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, "lora")
    m = loader.load_base_model(cfg)
    m.config.logit_scale = 0.5
    with pytest.raises(LeverError, match="scales its logits.*unset speed.lm_head_chunk"):
        speed.tile_lm_head(m, 256)
