"""ask()'s calibrated path on a model whose layers slide (Gemma 3): the status pass's KV cache is cut back and reused.

GPU session 14 trained Gemma 3 270M through the pipeline; the train notebook's ask() cell then failed with transformers'
"`crop` was called, but the current layer does not track past states, and the sliding window size was already reached".
A tiny random Gemma 3 with a window of 8 tokens, far shorter than any prompt, meets the same case offline."""
from types import SimpleNamespace

import pytest
import torch

from conftest import make_chunk


@pytest.fixture(scope="module")
def sliding(tiny_model_dir):
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig
    from kwanzaa.loader import prepare_tokenizer
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir), family="chatml", padding_side="left")
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8,
                           layer_types=["sliding_attention", "full_attention"], max_position_embeddings=4096,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return Gemma3ForCausalLM(cfg).eval(), tok


def test_status_cache_is_cut_back_past_the_window_and_gives_the_whole_inputs_logits(sliding):
    from kwanzaa.inference import STATUS_PREFIX, _reuse, _status_pass
    model, tok = sliding
    prompt = "Passage [1]: Kwanzaa was created in 1966 by Maulana Karenga. Question: who created Kwanzaa?"
    probs, cache, cached = _status_pass(model, tok, prompt)
    assert len(cached) > 3 * model.config.sliding_window   # the window was passed long before the status token
    ids = tok(prompt + STATUS_PREFIX + 'answered"', add_special_tokens=False).input_ids
    cache = _reuse(cache, cached, ids)
    assert cache is not None
    kept = cache.get_seq_length()
    assert kept == min(len(cached), len(ids) - 1)
    with torch.inference_mode():
        step = model(input_ids=torch.tensor([ids[kept:]]), cache=cache, logits_to_keep=1).logits[0, -1]
        whole = model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
    assert torch.allclose(step, whole, atol=1e-4)
    assert abs(sum(probs.values()) - 1.0) < 1e-5


def test_a_cache_that_cannot_be_cut_back_is_not_reused(sliding):
    "A cache built without past recording (as transformers makes it by default) is dropped, not an error."
    from kwanzaa.inference import _reuse
    model, _ = sliding
    ids = list(range(5, 40))
    with torch.inference_mode(): out = model(input_ids=torch.tensor([ids]), use_cache=True)
    assert _reuse(out.cache, ids, ids[:-3] + [7, 8, 9]) is None


def test_calibrated_answer_on_a_sliding_model_runs_end_to_end(sliding):
    from kwanzaa.contract import AnswerCore
    from kwanzaa.inference import _answer_core
    from kwanzaa.prompt import render_messages
    model, tok = sliding
    chunks = [make_chunk(1, "Kwanzaa was created in 1966 by Maulana Karenga. It lasts seven days."),
              make_chunk(2, "The first fruits celebrations of Africa inspired its name.")]
    asker = SimpleNamespace(model=model, tok=tok, calibration=SimpleNamespace(threshold=1.1), timings={})  # never refuses
    core = _answer_core(asker, [render_messages("Who created Kwanzaa?", chunks)], len(chunks), constrained=True,
                        max_new_tokens=24, passages=[c.text for c in chunks])
    assert isinstance(core, (AnswerCore, str))   # a random model: a parsed core or a counted error kind, never a crash
    assert {"decide_s", "generate_s"} <= set(asker.timings)
