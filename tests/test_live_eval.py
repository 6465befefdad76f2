"""Issue #25 item 4: the golden items through the project's own retrieval, on a tiny model through the real path."""
import json

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from kwanzaa.config import load_config
from kwanzaa.contract import AnswerCore, Chunk
from kwanzaa.corpus import Corpus, Retriever
from kwanzaa.examples import Example, Gold
from kwanzaa.inference import load_for_inference
from kwanzaa.live import compare_arms_live, live_examples
from kwanzaa.records import read_predictions

torch.set_num_threads(1)


def note(slug, text):
    return Chunk(chunk_id=f"kwanzaa_notes_{slug}::chunk::0", doc_id=f"kwanzaa_notes_{slug}", text=text, title=slug,
                 author="kwanzaa project", year=2026, source_org="kwanzaa project", license="CC-BY-4.0",
                 canonical_url=f"https://example.org/{slug}", namespace="kwanzaa_notes", content_type="reference_note")


CHUNKS = [note("origin", "Kwanzaa was created in 1966 by Maulana Karenga."), note("days", "Kwanzaa lasts seven days."),
          note("colours", "Its colours are black, red and green.")]


def item(id, question, cited=2):
    ctx = [c.chunk_id for c in CHUNKS]
    target = AnswerCore(status="answered", citations=[cited], unknowns=[], answer=f"It was created in 1966 [{cited}].")
    return Example(id=id, persona="educator", category="single_source", question=question, context=[ctx[1], ctx[0], ctx[2]],
                   gold=Gold(status="answered", supporting=[ctx[0]], key_facts=["1966"]), target=target)


def test_missed_gold_passages_become_refusal_items_and_citations_follow_the_passages():
    exs, s = live_examples([item("found", "When was Kwanzaa created by Karenga?"), item("lost", "Zebra quantum?")],
                           Retriever(Corpus(CHUNKS, hash="t")), k=2)
    assert s["missed"] == ["lost"] and s["gold_recall"] == 0.5
    found, lost = exs
    assert found.context[0] == "kwanzaa_notes_origin::chunk::0" and found.target.citations == [1]
    assert found.target.answer == "It was created in 1966 [1]."       # the marker renumbered with the passage
    assert lost.gold.status == "refused" and lost.target.citations == [] and lost.free_target is None


def test_compare_arms_live_writes_live_json_beside_the_arms(tmp_path, tiny_model_dir):
    cfg = load_config("cpu", overrides={"model.base": str(tiny_model_dir), "eval.max_new_tokens": 24, "eval.batch_size": 2})
    adapter = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules=["q_proj"])
                   ).save_pretrained(adapter)
    model, tok = load_for_inference(cfg, adapter, quantize=False)
    corpus = {c.chunk_id: c for c in CHUNKS}
    corpus = type("C", (dict,), {"get": dict.__getitem__})(corpus)
    res = compare_arms_live(cfg, [item("found", "When was Kwanzaa created by Karenga?"), item("lost", "Zebra quantum?")],
                            tmp_path / "live", retriever=Retriever(Corpus(CHUNKS, hash="t")), k=2, corpus=corpus,
                            model=model, tok=tok, arms=["adapter+extractive"])
    live = json.loads((tmp_path / "live" / "live.json").read_text())
    assert live["missed"] == ["lost"] and set(live["missed_refused"]) == {"adapter+extractive"}
    assert res["adapter+extractive"]["n"] == 2 and (tmp_path / "live" / "examples.jsonl").exists()
    recs = read_predictions(tmp_path / "live" / "adapter_extractive" / "predictions.jsonl")
    assert {r["grammar"] for r in recs.values()} <= {"extractive", "schema"}
