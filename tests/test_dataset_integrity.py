"""The committed dataset files (kwanzaa/datasets/*.jsonl) against the real corpus: every rule every example keeps."""
from collections import Counter
import pytest
from kwanzaa.config import load_config
from kwanzaa.contract import copy_units, core_to_text, inline_markers, parse, sentences, unquote_extractive
from kwanzaa.corpus import build_corpus, Retriever
from kwanzaa.contract import PERSONAS
from kwanzaa.data import build_dataset_files, example_problems, spec_paths
from kwanzaa.examples import CATEGORIES, dataset_path, example_messages, leaked_questions, load_dataset, normalise_text

@pytest.fixture(scope="module")
def corpus(): return build_corpus()

@pytest.fixture(scope="module")
def splits(corpus):
    "Every packaged dataset, loaded with chunk ids checked against the corpus."
    # an empty split is reported by test_sizes, not as an error in every test
    return {name: load_dataset(name, corpus) if dataset_path(name).stat().st_size else []
            for name in ("train", "validation", "golden", "pilot")}

def test_every_example_keeps_the_rules(splits, corpus):
    bad = [f"{name}/{e.id}: {p}" for name, exs in splits.items() for e in exs for p in example_problems(e, corpus)]
    assert bad == []

def test_targets_parse_as_cores(splits):
    for exs in splits.values():
        for e in exs:
            r = parse(core_to_text(e.target), n_passages=len(e.context))
            assert r.ok and r.core == e.target, e.id

def test_citations_only_point_at_supporting_passages(splits):
    for exs in splits.values():
        for e in exs:
            assert all(e.context[n - 1] in e.gold.supporting for n in e.target.citations), e.id
            if e.target.status in ("refused", "clarify"): assert e.target.citations == [], e.id

def test_key_facts_in_answered_targets(splits):
    for exs in splits.values():
        for e in exs:
            if e.target.status in ("answered", "partial"):
                for f in e.gold.key_facts: assert normalise_text(f).lower() in normalise_text(e.target.answer).lower(), (e.id, f)

def test_answers_are_copied_sentences_of_the_passages_they_cite(splits, corpus):
    "Every sentence of an answered/partial target (creative writing aside) is a copy unit of the passage it cites."
    n_checked = 0
    for exs in splits.values():
        for e in exs:
            if e.target.status not in ("answered", "partial") or e.toggles.creative_mode: continue
            assert e.free_target is not None and e.free_target.status == e.target.status, e.id
            for s in sentences(e.target.answer):
                (n,) = inline_markers(s)
                units = copy_units(corpus.get(e.context[n - 1]).text)
                back = unquote_extractive(s, units)
                assert back is not None and back[0] in units and n in e.target.citations, (e.id, s)
                n_checked += 1
            if e.category == "multi_source": assert len(set(e.target.citations)) >= 2, e.id
    assert n_checked >= 300

def test_ids_unique_across_splits(splits):
    ids = Counter(e.id for name in ("train", "validation", "golden") for e in splits[name])
    assert [i for i, n in ids.items() if n > 1] == []

def test_no_golden_question_leaks(splits):
    others = splits["train"] + splits["validation"]
    leaks = [(g, o) for g, o in leaked_questions(splits["golden"], others) if g.removesuffix("-neg") != o.removesuffix("-neg")]
    assert leaks == []

def test_sizes(splits):
    assert len(splits["train"]) >= 300
    assert len(splits["validation"]) >= 40
    assert len(splits["golden"]) == 40
    assert Counter(e.persona for e in splits["golden"]) == {p: 10 for p in PERSONAS}

def test_pilot_is_ten_training_examples(splits):
    train = {e.id: e for e in splits["train"]}
    assert len(splits["pilot"]) == 10
    assert all(train[e.id] == e for e in splits["pilot"])
    assert len({e.category for e in splits["pilot"]}) >= 5

def test_every_category_in_train_and_golden(splits):
    for name in ("train", "golden"):
        assert sorted(set(CATEGORIES) - {e.category for e in splits[name]}) == [], name

def test_mix_near_targets(splits):
    exs = splits["train"] + splits["validation"] + splits["golden"]
    n = len(exs)
    persona = Counter(e.persona for e in exs)
    for p, want in {"educator": .35, "researcher": .30, "creator": .20, "builder": .15}.items():
        assert abs(persona[p] / n - want) <= .07, (p, persona[p] / n)
    status = Counter(e.target.status for e in exs)
    for s, want in {"answered": .60, "refused": .25, "partial": .15}.items():
        assert abs(status[s] / n - want) <= .10, (s, status[s] / n)

def test_rebuild_gives_identical_files(tmp_path, corpus):
    from kwanzaa.loader import embedded_model_path, load_tokenizer   # the budget the command line passes
    from kwanzaa.data import token_budget
    fits = token_budget(load_tokenizer(embedded_model_path("smollm2")))
    out = build_dataset_files(tmp_path, corpus=corpus, retriever=Retriever(corpus), fits=fits)
    assert spec_paths(), "no spec files"
    for name, p in out.items():
        assert p.read_bytes() == dataset_path(name).read_bytes(), f"{name}.jsonl is stale: run kwanzaa data build"

def test_rendered_examples_fit_max_seq_length(splits, corpus):
    from kwanzaa.loader import embedded_model_path, load_tokenizer
    tok = load_tokenizer(embedded_model_path("smollm2"))  # the chat template the trainer uses
    limit = load_config("cpu").training.max_seq_length
    lengths = {}
    for exs in splits.values():
        for e in exs:
            for mode in ("extractive", "free"):
                ids = tok.apply_chat_template(example_messages(e, corpus, mode=mode), tokenize=True)
                ids = ids["input_ids"] if hasattr(ids, "keys") else ids
                lengths[e.id, mode] = len(ids)
    assert max(lengths.values()) <= limit, sorted(lengths.items(), key=lambda kv: -kv[1])[:5]


def _content_overlap(a, b):
    "Jaccard of the content words (near_duplicate's second test), to show which test a pair exercises."
    from kwanzaa.examples import _STOP, _words
    ca, cb = ({w for w in _words(q) if w not in _STOP} for q in (a, b))
    return len(ca & cb) / len(ca | cb)


def test_reworded_golden_question_is_a_near_duplicate():
    "A golden question with a word added and a clause appended leaks: the 3-gram test must catch it on its own."
    from kwanzaa.examples import near_duplicate, question_similarity
    golden = load_dataset("golden")
    q = next(e.question for e in golden if e.question.startswith("Besides Habari gani"))
    words = q.rstrip("?").split()
    reworded = " ".join(words[:8] + ["commonly"] + words[8:]) + " during December celebrations?"
    # only the word 3-gram Jaccard (> 0.5) can catch this pair: its content words differ too much
    assert 0.5 < question_similarity(q, reworded) < 0.95 and _content_overlap(q, reworded) < 0.8
    assert near_duplicate(q, reworded) and near_duplicate(reworded, q)
    planted = golden[0].model_copy(update={"id": "planted", "question": reworded})
    g = next(e for e in golden if e.question == q)
    assert leaked_questions([g], load_dataset("train")[:20] + [planted]) == [(g.id, "planted")]


def test_different_questions_are_not_near_duplicates():
    from kwanzaa.examples import near_duplicate
    golden = load_dataset("golden")
    pairs = [(a.question, b.question) for a, b in zip(golden[:10], golden[10:20])]
    assert [near_duplicate(a, b) for a, b in pairs] == [False] * len(pairs)
