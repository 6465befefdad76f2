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
