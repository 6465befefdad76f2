"""Issue #25: the model chooses the status and the passages, overlap with the question chooses the copied sentences
(kwanzaa.contract.choose_sentences; the `+overlap` arm; ask()'s eval.sentence_choice). Worked out by hand, and on a
tiny model through the real evaluator."""
import json

import torch

from kwanzaa.config import load_config
from kwanzaa.contract import AnswerCore, Chunk, choose_sentences, copy_units, extractive_sentence, sentences, stems
from kwanzaa.corpus import Corpus, Retriever
from kwanzaa.evaluate import compare_arms, score_text
from kwanzaa.examples import Example, Gold
from kwanzaa.inference import ask, load_for_inference
from kwanzaa.records import read_predictions

torch.set_num_threads(1)


def note(slug, text):
    return Chunk(chunk_id=f"kwanzaa_notes_{slug}::chunk::0", doc_id=f"kwanzaa_notes_{slug}", text=text, title=slug,
                 author="kwanzaa project", year=2026, source_org="kwanzaa project", license="CC-BY-4.0",
                 canonical_url=f"https://example.org/{slug}", namespace="kwanzaa_notes", content_type="reference_note")


SALE = note("sale", "The auction was short. She could neither read nor write; and when the bill of sale was made out, "
                    "she signed it with a cross. The price was low.")
OTHER = note("other", "Kwanzaa lasts seven days. Its colours are black, red and green.")
CHUNKS = [OTHER, SALE]
Q = "How did the buyer sign the bill of sale?"


def item(id="sale"):
    ctx = [c.chunk_id for c in CHUNKS]
    return Example(id=id, persona="educator", category="single_source", question=Q, context=ctx,
                   gold=Gold(status="answered", supporting=[ctx[1]], key_facts=["signed it with a cross"]),
                   target=AnswerCore(status="answered", citations=[2], unknowns=[],
                                     answer=extractive_sentence(copy_units(SALE.text)[1], 2)))


def core(answer, cites=(2,), status="answered"):
    return AnswerCore(status=status, citations=list(cites), answer=answer, unknowns=[])


def test_the_cited_passage_keeps_the_model_but_its_sentence_is_the_one_that_answers():
    wrong = core(extractive_sentence("The auction was short.", 2))
    got = choose_sentences(wrong, [c.text for c in CHUNKS], Q)
    assert got.citations == [2] and got.status == "answered"
    assert got.answer == extractive_sentence(copy_units(SALE.text)[1], 2)
    text = json.dumps(wrong.model_dump())
    plain, _ = score_text(item(), text, CHUNKS, citecheck=False)
    chosen, c = score_text(item(), text, CHUNKS, citecheck=False, overlap=True)
    assert plain["key_fact_ok"] is False and chosen["key_fact_ok"] is True and c.answer == got.answer
    assert chosen["n_unsupported"] == 0   # still a verbatim copy of the passage it cites


def test_counts_per_passage_and_passage_order_are_the_model_s():
    two = core(extractive_sentence("Kwanzaa lasts seven days.", 1) + " " + extractive_sentence("The price was low.", 2),
               cites=(1, 2))
    got = choose_sentences(two, [c.text for c in CHUNKS], Q)
    ss = sentences(got.answer)
    assert len(ss) == 2 and ss[0].endswith("[1].") and ss[1] == extractive_sentence(copy_units(SALE.text)[1], 2)
    # no overlap at all in passage 1: the model's own sentence stays
    assert ss[0] == extractive_sentence("Kwanzaa lasts seven days.", 1)


def test_free_text_refusals_and_foreign_sentences_are_left_alone():
    ps = [c.text for c in CHUNKS]
    for c in (core("She signed with a cross [2]."), core("The passages do not say.", cites=(), status="refused"),
              core(extractive_sentence("The auction was short.", 2) + " An invented claim [2].")):
        assert choose_sentences(c, ps, Q) == c
    assert choose_sentences(None, ps, Q) is None
    assert stems("Signed SALES, the buyer's") == {"sign", "sal", "buyer"}


def test_the_overlap_arm_rescores_its_generation_arm_without_generating(tmp_path, tiny_model_dir):
    cfg = load_config("cpu", overrides={"model.base": str(tiny_model_dir), "eval.max_new_tokens": 48, "eval.batch_size": 2})
    model, tok = load_for_inference(cfg, quantize=False)
    corpus = type("C", (dict,), {"get": dict.__getitem__})({c.chunk_id: c for c in CHUNKS})
    res = compare_arms(cfg, [item("a"), item("b")], tmp_path, arms=["base+extractive+overlap", "base+extractive"],
                       corpus=corpus, model=model, tok=tok)
    assert list(res) == ["base+extractive+overlap", "base+extractive"] and res["base+extractive+overlap"]["n"] == 2
    gen = read_predictions(tmp_path / "base_extractive" / "predictions.jsonl")
    over = read_predictions(tmp_path / "base_extractive_overlap" / "predictions.jsonl")
    assert {k: r["raw_output"] for k, r in gen.items()} == {k: r["raw_output"] for k, r in over.items()}
    for k, r in over.items():
        c = AnswerCore(**gen[k]["parsed"]) if gen[k]["parsed"] else None
        want = choose_sentences(c, [x.text for x in CHUNKS], Q)
        assert r["parsed"] == (want.model_dump() if want else None)


def test_ask_re_chooses_by_default_and_keeps_the_model_s_sentences_on_request(tiny_model_dir):
    model, tok = load_for_inference(str(tiny_model_dir))
    retriever = Retriever(Corpus(CHUNKS, hash="t"))
    for choice in ("overlap", "model"):
        cfg = load_config("lora", overrides={"model.base": str(tiny_model_dir), "model.device": "cpu",
                                             "eval.sentence_choice": choice})
        doc = ask(Q, model=model, tok=tok, cfg=cfg, retriever=retriever, max_new_tokens=200,
                  toggles=None, k=2)
        assert doc.version
        if doc.integrity.fallback_behavior == "refusal" or choice == "model": continue
        q = stems(Q)
        for s in sentences(doc.answer.text):
            n = int(s.rsplit("[", 1)[1].split("]")[0])
            chunk = next(c for c in CHUNKS if c.chunk_id == doc.sources[n - 1].chunk_id) if doc.sources else None
            if chunk is None: continue
            best = max(len(q & stems(u)) for u in copy_units(chunk.text))
            assert len(q & stems(s)) >= best, s
    assert load_config("lora").eval.sentence_choice == "overlap"   # the unit ranker is opt-in (tests/test_rank.py)
