"""Issue #25: an extractive answer that does not cite the lead passage (the most idf-weighted words shared with the
question) is rebuilt from it (kwanzaa.retrieval.choose_passage; the `+lead` arm; ask()'s eval.passage_choice).
Worked out by hand, and on a tiny model through the real evaluator and ask()."""
import torch

from kwanzaa.config import load_config
from kwanzaa.contract import AnswerCore, copy_units, extractive_sentence, sentences
from kwanzaa.corpus import Corpus, Retriever
from kwanzaa.evaluate import compare_arms, generation_arm, score_text
from kwanzaa.inference import ask, load_for_inference
from kwanzaa.records import read_predictions
from kwanzaa.retrieval import choose_passage, idf_of, lead_passage
from test_sentence_choice import CHUNKS, OTHER, Q, SALE, core, item

torch.set_num_threads(1)
TEXTS = [c.text for c in CHUNKS]


def test_an_answer_from_the_wrong_passage_is_rebuilt_from_the_lead_one_and_then_grounds_the_fact():
    wrong = core(extractive_sentence("Kwanzaa lasts seven days.", 1), cites=(1,))
    assert lead_passage(Q, TEXTS, idf_of()) == 2                      # the bill-of-sale passage
    got = choose_passage(wrong, TEXTS, Q, idf_of())
    assert got.citations == [2] and got.answer == extractive_sentence(copy_units(SALE.text)[1], 2)
    before, _ = score_text(item(), wrong.model_dump_json(), CHUNKS, citecheck=False)
    after, c = score_text(item(), wrong.model_dump_json(), CHUNKS, citecheck=False, lead=True)
    assert c == got and (before["key_fact_ok"], after["key_fact_ok"]) == (False, True)


def test_as_many_sentences_as_the_model_copied_per_passage_and_a_cited_lead_changes_nothing():
    two = core(" ".join(extractive_sentence(u, 1) for u in copy_units(OTHER.text)), cites=(1,))
    assert len(sentences(choose_passage(two, TEXTS, Q, idf_of()).answer)) == 2
    right = core(extractive_sentence(copy_units(SALE.text)[0], 2))
    assert choose_passage(right, TEXTS, Q, idf_of()) == right        # cites the lead passage: the model's answer stands
    for kept in (None, core("It was signed with a cross [1].", cites=(1,)),
                 core("The passages do not say.", cites=(), status="refused")):
        assert choose_passage(kept, TEXTS, Q, idf_of()) == kept       # nothing, free text, a refusal: as they were


def test_the_lead_arm_rescores_its_generation_arm_without_generating(tmp_path, tiny_model_dir):
    assert generation_arm("adapter+extractive+calibrated+overlap+lead") == "adapter+extractive+calibrated"
    cfg = load_config("cpu", overrides={"model.base": str(tiny_model_dir), "eval.max_new_tokens": 48, "eval.batch_size": 2})
    model, tok = load_for_inference(cfg, quantize=False)
    corpus = type("C", (dict,), {"get": dict.__getitem__})({c.chunk_id: c for c in CHUNKS})
    res = compare_arms(cfg, [item("a"), item("b")], tmp_path, arms=["base+extractive+lead", "base+extractive"],
                       corpus=corpus, model=model, tok=tok)
    assert res["base+extractive+lead"]["n"] == 2
    gen = read_predictions(tmp_path / "base_extractive" / "predictions.jsonl")
    lead = read_predictions(tmp_path / "base_extractive_lead" / "predictions.jsonl")
    assert {k: r["raw_output"] for k, r in gen.items()} == {k: r["raw_output"] for k, r in lead.items()}
    for k, r in lead.items():
        c = AnswerCore(**gen[k]["parsed"]) if gen[k]["parsed"] else None
        want = choose_passage(c, TEXTS, Q, idf_of())
        assert r["parsed"] == (want.model_dump() if want else None)


def test_ask_keeps_the_model_s_passages_by_default_and_answers_from_the_lead_one_on_request(tiny_model_dir):
    model, tok = load_for_inference(str(tiny_model_dir))
    retriever = Retriever(Corpus(CHUNKS, hash="t"))
    assert load_config("lora").eval.passage_choice == "model"   # validation did not pick lead (passage-choice)
    for choice in ("lead", "model"):
        cfg = load_config("lora", overrides={"model.base": str(tiny_model_dir), "model.device": "cpu",
                                             "eval.passage_choice": choice})
        doc = ask(Q, model=model, tok=tok, cfg=cfg, retriever=retriever, max_new_tokens=200, k=2)
        assert doc.version
        if doc.integrity.fallback_behavior == "refusal" or choice == "model" or not doc.sources: continue
        got = [c for c, _ in retriever.search(Q, k=2)]
        lead = lead_passage(Q, [c.text for c in got], idf_of(retriever.corpus))
        assert got[lead - 1].chunk_id in {s.chunk_id for s in doc.sources}   # an extractive answer cites the lead passage
