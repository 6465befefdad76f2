"""kwanzaa.inference on a tiny random model: batching, constrained decoding, ask(), loading errors."""
import json
from pathlib import Path

import pytest
import torch

from kwanzaa.config import load_config
from kwanzaa.contract import AnswerDocument, Chunk, Toggles, parse, validate_document
from kwanzaa.corpus import Corpus, Retriever, load_notes
from kwanzaa.prompt import render_messages
from kwanzaa.inference import (FALLBACK_CORE, InferenceError, ask, compare_batching, generate, load_for_inference)
from kwanzaa.loader import make_tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def loaded(tiny):
    return load_for_inference(str(tiny))


def _notes():
    "The project's own notes (package data) as one-chunk passages: a real corpus that needs no raw sources."
    keys = ("doc_id", "title", "author", "year", "source_org", "license", "canonical_url", "namespace", "content_type")
    return [Chunk(chunk_id=f"{d['doc_id']}::chunk::0", text=d["text"], **{k: d[k] for k in keys}) for d in load_notes()]


@pytest.fixture(scope="module")
def chats():
    notes = _notes()
    qs = ["When was Kwanzaa created?", "What does Umoja mean?", "Which colours are on the kinara?",
          "How many days does Kwanzaa last, and when does it start and end?", "What is Karamu?"]
    # passage counts 0..4 so prompt lengths differ widely (left padding matters)
    return [render_messages(q, notes[i:i + (i % 5)], persona=p)
            for i, (q, p) in enumerate(zip(qs, ["educator", "researcher", "creator", "builder", "educator"]))]


def test_batched_equals_one_at_a_time_greedy(loaded, chats):
    model, tok = loaded
    batched = generate(model, tok, chats, max_new_tokens=30, batch_size=4)
    single = [generate(model, tok, [c], max_new_tokens=30, batch_size=1)[0] for c in chats]
    assert [g.raw for g in batched] == [g.raw for g in single]
    assert [g.n_new_tokens for g in batched] == [g.n_new_tokens for g in single]
    assert all(1 <= g.n_new_tokens <= 30 for g in batched)


def test_constrained_decoding_always_parses(loaded, chats):
    model, tok = loaded
    ns = [i % 5 for i in range(len(chats))]
    for budget in (8, 400):  # 8 tokens cannot finish a core (fallback); 400 lets the random model finish
        gens = generate(model, tok, chats, max_new_tokens=budget, batch_size=3, constrained=True, n_passages=ns)
        for g, n in zip(gens, ns):
            r = parse(g.text, n_passages=n)
            assert r.ok, (budget, g.raw, r.errors)
            assert all(1 <= c <= n for c in r.core.citations)
            if g.fallback is None: assert g.stopped and g.text == g.raw
            else: assert json.loads(g.text) == FALLBACK_CORE.model_dump()
        if budget == 8: assert all(g.fallback == "budget" for g in gens)
        else: assert sum(g.fallback is None for g in gens) >= 1, [g.raw for g in gens]


def test_constrained_needs_passage_counts(loaded, chats):
    model, tok = loaded
    with pytest.raises(InferenceError, match="needs n_passages"):
        generate(model, tok, chats, constrained=True)
    with pytest.raises(InferenceError, match="2 values for 5 prompts"):
        generate(model, tok, chats, constrained=True, n_passages=[1, 2])


@pytest.fixture(scope="module")
def retriever():
    notes = _notes()
    return Retriever(Corpus(notes, hash="notes"))


def test_ask_returns_a_valid_answer_document(loaded, tiny, retriever):
    model, tok = loaded
    cfg = load_config("cpu", overrides={"model.base": str(tiny)})
    for q, persona in [("When was Kwanzaa created and by whom?", "researcher"), ("What does Umoja mean?", "builder")]:
        doc = ask(q, persona=persona, k=3, model=model, tok=tok, retriever=retriever, cfg=cfg, max_new_tokens=400)
        assert isinstance(doc, AnswerDocument)
        validate_document(json.loads(doc.model_dump_json()))
        assert doc.persona == persona and doc.retrieval_summary.query == q
        assert len(doc.retrieval_summary.results) == 3
        retrieved = {r.chunk_id for r in doc.retrieval_summary.results}
        assert {s.chunk_id for s in doc.sources} <= retrieved
        if doc.integrity.fallback_behavior == "refusal": assert doc.sources == []


def test_ask_refuses_without_retrieval(loaded, tiny, retriever):
    model, tok = loaded
    cfg = load_config("cpu", overrides={"model.base": str(tiny)})
    doc = ask("xylophone zeppelin", model=model, tok=tok, retriever=retriever, cfg=cfg)
    assert doc.integrity.fallback_behavior == "refusal" and doc.sources == [] and doc.answer.completeness == "none"
    assert doc.retrieval_summary.results == []
    validate_document(doc.model_dump())
    # primary_sources_only searches only primary sources: none in a notes-only corpus, so a refusal
    doc = ask("When was Kwanzaa created?", toggles=Toggles(primary_sources_only=True), model=model, tok=tok,
              retriever=retriever, cfg=cfg)
    assert doc.integrity.fallback_behavior == "refusal" and doc.retrieval_summary.results == []


def test_adapter_loading_and_clear_errors(tiny, tmp_path, chats):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    with pytest.raises(InferenceError, match="does not exist"):
        load_for_inference(str(tiny), adapter_dir=tmp_path / "missing")
    with pytest.raises(InferenceError, match="no adapter_config.json"):
        load_for_inference(str(tiny), adapter_dir=tiny)
    with pytest.raises(InferenceError, match="cannot load base model"):
        load_for_inference(str(tmp_path / "no-model"))
    adir = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
                   ).save_pretrained(adir)
    model, tok = load_for_inference(str(tiny), adapter_dir=adir)
    assert hasattr(model, "peft_config") and tok.padding_side == "left"
    assert len(generate(model, tok, chats[:2], max_new_tokens=4)) == 2


def test_four_bit_inference(tiny, chats):
    cfg = load_config("qlora", overrides={"model.base": str(tiny)})
    model, tok = load_for_inference(cfg)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    gens = generate(model, tok, chats[:2], max_new_tokens=5, constrained=True, n_passages=[0, 1])
    assert all(parse(g.text).ok for g in gens)


def test_compare_batching_reports_both_modes(loaded, chats):
    model, tok = loaded
    r = compare_batching(model, tok, chats[:4], batch_size=4, max_new_tokens=6, repeats=1)
    assert r["identical_outputs"] is True and r["identical_rows"] == 4 and r["batched"]["new_tokens"] > 0
    assert r["batched"]["tokens_per_s"] > 0 and r["one_at_a_time"]["tokens_per_s"] > 0
    assert r["speedup"] == pytest.approx(r["batched"]["tokens_per_s"] / r["one_at_a_time"]["tokens_per_s"])


# ---- hostile inputs to ask() and generate(): InferenceError naming the argument, never a long echo ----
@pytest.mark.parametrize("k", [True, 2.5, -1, 9, "3", [1]])
def test_ask_rejects_bad_k(loaded, tiny, retriever, k):
    model, tok = loaded
    cfg = load_config("cpu", overrides={"model.base": str(tiny)})
    with pytest.raises(InferenceError) as e: ask("When was Kwanzaa created?", k=k, model=model, tok=tok, retriever=retriever, cfg=cfg)
    assert str(e.value) == f"k must be an integer in 0..8; got {k!r}"


@pytest.mark.parametrize("n", [0, -5, True, 1.5])
def test_max_new_tokens_must_be_positive(loaded, tiny, retriever, chats, n):
    model, tok = loaded
    cfg = load_config("cpu", overrides={"model.base": str(tiny)})
    with pytest.raises(InferenceError) as e:
        ask("When was Kwanzaa created?", max_new_tokens=n, model=model, tok=tok, retriever=retriever, cfg=cfg)
    assert str(e.value) == f"max_new_tokens must be an integer >= 1; got {n!r}"
    with pytest.raises(InferenceError) as e: generate(model, tok, chats[:1], max_new_tokens=n)
    assert str(e.value) == f"max_new_tokens must be an integer >= 1; got {n!r}"


def test_huge_question_is_refused_without_echo(loaded, tiny, retriever):
    model, tok = loaded
    cfg = load_config("cpu", overrides={"model.base": str(tiny)})
    q = "Kwanzaa " * 12_500   # 100 kB
    with pytest.raises(InferenceError) as e: ask(q, model=model, tok=tok, retriever=retriever, cfg=cfg)
    assert str(e.value).startswith(f"question is {len(q)} characters; the limit is 2000")
    assert len(str(e.value)) < 250
    for bad in (dict(persona="x" * 100_000), dict(question=["When?"] * 10_000)):
        kw = {"question": "When was Kwanzaa created?"} | bad
        with pytest.raises(InferenceError) as e: ask(**kw, model=model, tok=tok, retriever=retriever, cfg=cfg)
        assert len(str(e.value)) < 250


# ---- adapter directories: what is wrong, said plainly ----
@pytest.fixture(scope="module")
def adapter(tiny, tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    adir = tmp_path_factory.mktemp("a") / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adir)
    return adir


def _copy(adapter, tmp_path):
    import shutil
    return Path(shutil.copytree(adapter, tmp_path / "copy"))



def test_adapter_without_weights(tiny, adapter, tmp_path):
    d = _copy(adapter, tmp_path)
    (d / "adapter_model.safetensors").unlink()
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny), adapter_dir=d)
    assert str(e.value) == f"{d} has no adapter weights: adapter_model.safetensors is missing"
    (d / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny), adapter_dir=d)
    assert str(e.value).endswith("(adapter_model.bin is there: pickle weights are not loaded; re-save it with safetensors)")


def test_adapter_config_that_is_a_directory(tiny, adapter, tmp_path):
    d = _copy(adapter, tmp_path)
    (d / "adapter_config.json").unlink(); (d / "adapter_config.json").mkdir()
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny), adapter_dir=d)
    assert str(e.value).startswith(f"{d / 'adapter_config.json'} is a directory, not the adapter's config file")


def test_adapter_that_is_not_lora(tiny, adapter, tmp_path):
    d = _copy(adapter, tmp_path)
    conf = json.loads((d / "adapter_config.json").read_text())
    (d / "adapter_config.json").write_text(json.dumps(conf | {"peft_type": "IA3"}))
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny), adapter_dir=d)
    assert str(e.value) == f"{d / 'adapter_config.json'} has peft_type 'IA3': kwanzaa loads LoRA adapters only (peft_type LORA)"
    (d / "adapter_config.json").write_text("{not json")
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny), adapter_dir=d)
    assert str(e.value).startswith(f"{d / 'adapter_config.json'} is not a readable JSON file")


def test_adapter_trained_on_another_base_is_refused(tiny, adapter, tmp_path):
    from kwanzaa.records import file_sha256
    other = make_tiny_model(tmp_path / "other")
    d = _copy(adapter, tmp_path)
    # PEFT's record (base_model_name_or_path) names the tiny model's directory, not `other`
    with pytest.raises(InferenceError) as e: load_for_inference(str(other), adapter_dir=d)
    assert str(e.value) == (f"the adapter in {d} was trained on '{tiny}' (adapter_config.json), but the configured base "
                            f"is '{other}'; set model.base={tiny} (or pass check_base=False to load it anyway)")
    model, _ = load_for_inference(str(other), adapter_dir=d, check_base=False)
    assert hasattr(model, "peft_config")
    # the trainer's record wins over PEFT's; the tokenizer hash is compared when both are known
    rec = {"base": str(tiny), "revision": None, "tokenizer_sha256": file_sha256(tiny / "tokenizer.json")}
    (d / "kwanzaa_adapter.json").write_text(json.dumps(rec))
    assert hasattr(load_for_inference(str(tiny), adapter_dir=d)[0], "peft_config")
    (d / "kwanzaa_adapter.json").write_text(json.dumps(rec | {"base": "embedded:gemma3-270m"}))
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny), adapter_dir=d)
    assert str(e.value).startswith(f"the adapter in {d} was trained on 'embedded:gemma3-270m' (kwanzaa_adapter.json), "
                                   f"but the configured base is '{tiny}'")
    (d / "kwanzaa_adapter.json").write_text(json.dumps(rec | {"tokenizer_sha256": "0" * 64}))
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny), adapter_dir=d)
    assert "was trained with a different tokenizer" in str(e.value) and "000000000000..." in str(e.value)


def test_ask_with_an_adapter_uses_its_recorded_base(tiny, adapter, tmp_path, retriever):
    from kwanzaa.inference import _config_for_adapter
    d = _copy(adapter, tmp_path)
    assert _config_for_adapter(d).model.base == str(tiny)               # from adapter_config.json
    (d / "kwanzaa_adapter.json").write_text(json.dumps({"base": str(tiny), "revision": None, "tokenizer_sha256": None}))
    cfg = _config_for_adapter(d)
    assert (cfg.model.base, cfg.name) == (str(tiny), "qlora")
    doc = ask("When was Kwanzaa created?", k=2, adapter_dir=d, retriever=retriever, max_new_tokens=8)
    assert isinstance(doc, AnswerDocument)


def test_status_probabilities_reads_only_the_last_position_and_matches_the_full_logits(tiny_model_dir):
    "logits_to_keep=1 under left padding gives the same status distribution as the full logits' last column."
    import torch
    from kwanzaa.contract import STATUSES
    from kwanzaa.inference import STATUS_PREFIX, prompt_text, status_probabilities, status_token_ids
    from kwanzaa.prompt import render_messages
    model, tok = load_for_inference(str(tiny_model_dir))
    chats = [render_messages("Who created Kwanzaa?", []), render_messages("A much longer question about the feast?", [])]
    got = status_probabilities(model, tok, chats, batch_size=2)
    ids = list(status_token_ids(tok).values())
    enc = tok([prompt_text(tok, m) + STATUS_PREFIX for m in chats], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode(): p = torch.softmax(model(**enc).logits[:, -1, :].float(), -1)[:, ids]
    p = p / p.sum(-1, keepdim=True)
    for row, want in zip(got, p.tolist()):
        assert set(row) == set(STATUSES) and all(abs(a - b) < 1e-5 for a, b in zip(row.values(), want))
