"""Extractive answers: copy units of every shipped passage, written as answer sentences, split back and unquoted."""
import pytest
from kwanzaa.contract import (MAX_ANSWER_CHARS, MAX_PASSAGES, copy_units, extractive_sentence, inline_markers, sentences,
                              unquote_extractive)
from kwanzaa.corpus import build_corpus

@pytest.fixture(scope="module")
def corpus(): return build_corpus()

def test_every_unit_of_the_corpus_is_one_sentence_with_one_marker(corpus):
    n_units = n_ambiguous = 0
    for ch in corpus.chunks:
        units, flat = copy_units(ch.text), " ".join(ch.text.split())
        assert units or not any(c.isalnum() for c in ch.text), ch.chunk_id
        for u in units:
            n_units += 1
            assert u and "\n" not in u and u in flat, (ch.chunk_id, u)
            for n in (1, MAX_PASSAGES):
                s = extractive_sentence(u, n)
                assert len(s) <= MAX_ANSWER_CHARS, (ch.chunk_id, u)
                assert sentences(s) == [s], (ch.chunk_id, s, sentences(s))
                assert inline_markers(s) == [n], (ch.chunk_id, s)
                back = unquote_extractive(s, units)
                assert back[1] == n and back[0] in units and extractive_sentence(*back) == s, (ch.chunk_id, s, back)
                n_ambiguous += back != (u, n)   # only 'a line' beside 'a line.' in one passage: both are true copies
    assert n_units > 30000 and n_ambiguous <= 4, (n_units, n_ambiguous)

def test_answers_of_several_units_split_back_into_them(corpus):
    ch = next(c for c in corpus.chunks if c.doc_id.startswith("dunbar"))   # verse: lines without sentence ends
    units = copy_units(ch.text)[:6]
    answer = " ".join(extractive_sentence(u, i % 3 + 1) for i, u in enumerate(units))
    assert sentences(answer) == [extractive_sentence(u, i % 3 + 1) for i, u in enumerate(units)]

def test_passages_without_sentence_ends_and_bad_input():
    assert copy_units("Umoja\nKujichagulia\nUjima") == ["Umoja", "Kujichagulia", "Ujima"]
    assert copy_units("") == [] and copy_units("* * *\n---") == []
    table = "| principle | day |\n| Umoja | December 26 |"
    assert [extractive_sentence(u, 2) for u in copy_units(table)] == ["| principle | day | [2].", "| Umoja | December 26 | [2]."]
    long = ", ".join(["the names of the seven principles"] * 30)
    assert all(len(u) <= 300 for u in copy_units(long)) and " ".join(copy_units(long)) == long
    assert all(len(u) <= MAX_ANSWER_CHARS - 10 for u in copy_units("x" * 2000))
    assert unquote_extractive("Not copied.") is None and unquote_extractive("Two [1] marks [2].") is None


# ---- the data side: extractive training targets, same-document distractors, answer modes ----
import ast, json
from pathlib import Path
from kwanzaa.corpus import Retriever
from kwanzaa.data import build_examples, example_problems, load_specs
from kwanzaa.examples import DataError, example_messages

FIXTURE = Path(__file__).parent / "fixtures" / "specs_sample.jsonl"

@pytest.fixture(scope="module")
def retriever(corpus): return Retriever(corpus)

@pytest.fixture(scope="module")
def built(corpus, retriever): return {e.id: e for e in build_examples(load_specs(FIXTURE), corpus, retriever)}

def test_targets_copy_the_sentences_that_hold_the_quotes(built, corpus):
    e = built["fx-single-01"]
    n = e.context.index("kwanzaa_notes_origin::chunk::0") + 1
    assert e.target.answer == (f"Kwanzaa was created in 1966 by Maulana Karenga, an African American scholar and activist "
                               f"based in Los Angeles [{n}].")   # the whole sentence the quote lies in, verbatim
    assert e.target.citations == [n] and e.free_target.answer == f"Maulana Karenga created Kwanzaa in 1966 [{n}]."
    assert example_problems(e, corpus) == []
    m = built["fx-multi-01"]   # one sentence per evidence item, in evidence order, each from its own passage
    (s1, s2) = sentences(m.target.answer)
    assert s1.startswith("Umoja, meaning unity") and s2.startswith("Nia, meaning purpose")
    assert inline_markers(s1) != inline_markers(s2) and sorted(inline_markers(m.target.answer)) == m.target.citations
    p = built["fx-partial-01"]   # partial: the answered part's sentence; what is missing stays in unknowns
    assert p.target.status == "partial" and p.target.unknowns == p.free_target.unknowns != []
    assert p.target.answer.endswith("designed by the artist Synthia Saint James " + f"[{p.target.citations[0]}].")

def test_one_target_for_refusals_and_the_author_s_for_creative_writing(built):
    for i in ("fx-single-01-neg", "fx-refuse-none-01", "fx-refuse-irr-01", "fx-clarify-01"):
        assert built[i].free_target is None, i
    c = built["fx-creative-01"]
    assert c.target == c.free_target and c.target.answer.startswith("Seven candles, the mishumaa saba, rise together")

def test_example_messages_and_training_pick_the_mode(built, corpus):
    e = built["fx-single-01"]
    assert json.loads(example_messages(e, corpus)[-1]["content"])["answer"] == e.target.answer
    assert json.loads(example_messages(e, corpus, mode="free")[-1]["content"])["answer"] == e.free_target.answer
    with pytest.raises(DataError, match="expected one of extractive, free"): example_messages(e, corpus, mode="abstractive")

def test_training_examples_follow_the_configured_answer_mode():
    from kwanzaa.config import load_config
    from kwanzaa.examples import training_examples
    _, ext, _, _ = training_examples(load_config("pilot"))
    _, free, _, _ = training_examples(load_config("pilot", overrides=["data.answer_mode=free"]))
    assert [e.id for e in free] == [e.id for e in ext]
    assert [e.target for e in free] == [e.free_target or e.target for e in ext]

def test_a_quote_over_two_sentences_copies_both_and_facts_must_be_copied(tmp_path, corpus, retriever):
    base = json.loads(FIXTURE.read_text().splitlines()[0]); base.pop("contrastive")
    two = base | {"id": "two", "evidence": [{"doc_id": "kwanzaa_notes_muhindi", "quote": "seven symbols of Kwanzaa. They represent children"}],
                  "answer": "The muhindi represent children {1}.", "key_facts": ["children"], "question": "What does the corn stand for?"}
    far = base | {"id": "far", "evidence": [{"doc_id": "kwanzaa_notes_muhindi", "quote": "They represent children and the future they embody."}],
                  "answer": "The muhindi represent children {1}.", "key_facts": ["muhindi"], "question": "What does the muhindi stand for?"}
    p = tmp_path / "s.jsonl"; p.write_text(json.dumps(two) + "\n" + json.dumps(far) + "\n")
    problems = []
    (ex,) = build_examples(load_specs(p), corpus, retriever, problems=problems)
    n = ex.target.citations[0]
    assert sentences(ex.target.answer) == [f"The muhindi, ears of corn, are one of the seven symbols of Kwanzaa [{n}].",
                                           f"They represent children and the future they embody [{n}]."]
    assert problems == [f"{p}:2: far: field 'key_facts': 'muhindi' not in the extractive answer (the sentences that hold "
                        "the quotes): quote the sentence that states it"]

def test_distractors_come_from_the_same_document_first(built, corpus, retriever):
    e = built["fx-primary-01"]   # Douglass's Narrative is long: the other passages are more of it, without the fact
    assert {corpus.get(c).doc_id for c in e.context} == {"douglass_narrative_1845"}
    assert [c for c in e.context if "Tuckahoe" in corpus.get(c).text] == e.gold.supporting
    again = {x.id: x for x in build_examples(load_specs(FIXTURE), corpus, retriever)}
    assert again["fx-primary-01"] == e   # deterministic
    short = built["fx-single-01"]        # a one-chunk note has no other part: the retriever's hits fill in
    assert len(short.context) == 3 and len({corpus.get(c).doc_id for c in short.context}) == 3

def test_the_data_floor_loads_no_model():
    "kwanzaa.data and kwanzaa.examples import nothing above the knowledge floor (module or function level)."
    up = {"loader", "speed", "fused", "hardware", "trainer", "publish", "inference", "grammar", "calibrate", "evaluate",
          "pipeline", "bench", "bench_reports", "estimate", "readme", "ask_bench", "cli"}
    import kwanzaa
    for mod in ("data", "examples"):
        tree = ast.parse((Path(kwanzaa.__file__).parent / f"{mod}.py").read_text())
        names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + \
                [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in names if m.rsplit(".", 1)[-1] in up], (mod, names)

def test_a_whole_passage_copied_as_an_answer_splits_back_into_its_units(corpus):
    "Units joined in an answer stay apart, even where the next one starts in lower case (a cut at ', ')."
    for ch in corpus.chunks:
        units = copy_units(ch.text)
        written = [extractive_sentence(u, i % 3 + 1) for i, u in enumerate(units)]
        assert sentences(" ".join(written)) == written, ch.chunk_id
