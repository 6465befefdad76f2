"""The dataset builder on the real corpus: specs -> examples (kwanzaa.data.build_examples, check_specs)."""
import io, json
from pathlib import Path
import pytest
from kwanzaa.corpus import build_corpus, Retriever
from kwanzaa.data import build_examples, build_dataset_files, check_specs, example_problems, load_specs, token_budget
from kwanzaa.examples import CATEGORIES, DataError, example_messages, load_examples, normalise_text
from kwanzaa.cli import main
from kwanzaa.loader import load_tokenizer

FIXTURE = Path(__file__).parent / "fixtures" / "specs_sample.jsonl"

@pytest.fixture(scope="module")
def corpus(): return build_corpus()

@pytest.fixture(scope="module")
def retriever(corpus): return Retriever(corpus)

@pytest.fixture(scope="module")
def built(corpus, retriever): return build_examples(load_specs(FIXTURE), corpus, retriever)

def test_fixture_builds_clean(built, corpus):
    by = {e.id: e for e in built}
    assert len(built) == sum(1 for _ in open(FIXTURE)) + 1  # one contrastive twin
    assert {e.category for e in built} == set(CATEGORIES)
    for e in built: assert example_problems(e, corpus) == [], e.id

def test_citations_point_at_the_quoted_chunk(built, corpus):
    specs = {s.id: s for s in load_specs(FIXTURE)}
    for e in built:
        s = specs.get(e.id)
        if s is None or not s.evidence: continue
        for n in e.target.citations:
            assert any(normalise_text(ev.quote) in normalise_text(corpus.get(e.context[n - 1]).text) for ev in s.evidence)
        assert len(e.context) >= len(e.gold.supporting) + 1  # at least one distractor

def test_contrastive_twin(built, corpus):
    by = {e.id: e for e in built}
    orig, twin = by["fx-single-01"], by["fx-single-01-neg"]
    assert (twin.pair_id, twin.target.status, twin.target.citations) == (orig.id, "refused", [])
    assert twin.question == orig.question and len(twin.context) == len(orig.context)
    changed = [i for i, (a, b) in enumerate(zip(orig.context, twin.context)) if a != b]
    assert [orig.context[i] for i in changed] == orig.gold.supporting
    for c in twin.context: assert "Karenga" not in corpus.get(c).text

def test_categories_shape_the_context(built, corpus):
    by = {e.id: e for e in built}
    assert by["fx-refuse-none-01"].context == []
    assert "inj-01::chunk::0" in by["fx-inject-01"].context
    assert by["fx-creative-01"].toggles.creative_mode and not by["fx-creative-01"].toggles.require_citations
    assert {corpus.get(c).namespace for c in by["fx-primary-01"].context} == {"primary_sources"}
    for e in built:
        if e.category != "prompt_injection": assert all(corpus.get(c).namespace != "adversarial" for c in e.context)

def test_deterministic_and_seeded(corpus, retriever, built):
    specs = load_specs(FIXTURE)
    assert build_examples(specs, corpus, retriever) == built
    other = build_examples(specs, corpus, retriever, seed=1)
    kept = lambda exs: [sorted(e.context) for e in exs if e.id != "fx-primary-01"]  # ties among a long document's parts follow the seed
    assert kept(other) == kept(built)
    assert [e.gold.supporting for e in other] == [e.gold.supporting for e in built]
    assert [e.context for e in other] != [e.context for e in built]

def test_dataset_files_rebuild_identically(tmp_path, corpus, retriever):
    a = build_dataset_files(tmp_path / "a", paths=[FIXTURE], corpus=corpus, retriever=retriever)
    b = build_dataset_files(tmp_path / "b", paths=[FIXTURE], corpus=corpus, retriever=retriever)
    assert sorted(a) == ["golden", "pilot", "train", "validation"]
    for k in a: assert a[k].read_bytes() == b[k].read_bytes()
    train = load_examples(a["train"], corpus)
    assert len(load_examples(a["pilot"])) == min(10, len(train))

def _spec(**kw):
    base = json.loads(FIXTURE.read_text().splitlines()[0]); base.pop("contrastive")
    return base | kw

def _problems(tmp_path, corpus, retriever, *specs):
    p = tmp_path / "s.jsonl"
    p.write_text("".join(json.dumps(s) + "\n" for s in specs))
    out = []
    build_examples(load_specs(p), corpus, retriever, problems=out)
    return p, out

def test_spec_problems_name_file_line(tmp_path, corpus, retriever):
    ev = lambda d, q: [{"doc_id": d, "quote": q}]
    p, out = _problems(tmp_path, corpus, retriever,
        _spec(id="a", evidence=ev("kwanzaa_notes_origin", "Kwanzaa was invented in 1966")),
        _spec(id="b", evidence=ev("kwanzaa_notes_orign", "Kwanzaa was created in 1966")),
        _spec(id="c", answer="Created in 1966 by Maulana Karenga {2}."),
        _spec(id="d", answer="Created in 1966 by Maulana Karenga, called \"the founder\" {1}."),
        _spec(id="e", answer="Created in 1966 {1}."),
        _spec(id="f", answer="Created in 1966 by Maulana Karenga [1]."),
        _spec(id="g", category="prompt_injection", injection="inj-99"),
        _spec(id="h", evidence=ev("kwanzaa_notes_origin", "kwanzaa was created in 1966")))
    assert out == [
        f"{p}:1: a: quote not found in kwanzaa_notes_origin: 'Kwanzaa was invented in 1966'",
        f"{p}:2: b: unknown doc_id 'kwanzaa_notes_orign'; did you mean 'kwanzaa_notes_origin'?",
        f"{p}:3: c: field 'answer': marker {{2}} but the spec has 1 evidence item(s)",
        f"{p}:4: d: field 'answer': no double quotes inside the answer; use single quotes",
        f"{p}:5: e: field 'key_facts': 'Maulana Karenga' does not appear in the answer",
        f"{p}:6: f: field 'answer': write evidence markers as {{1}}, not [1]",
        f"{p}:7: g: field 'injection': unknown injection 'inj-99'; known: " + ", ".join(f"inj-{i:02d}" for i in range(1, 11)),
        f"{p}:8: h: quote not found in kwanzaa_notes_origin (it matches ignoring case; copy the case exactly): 'kwanzaa was created in 1966'"]

def test_quote_across_chunk_boundary(tmp_path, corpus, retriever):
    a, b = corpus.doc_chunks("douglass_narrative_1845")[5:7]
    q = " ".join(a.text.split()[-4:] + b.text.split()[:4])
    p, out = _problems(tmp_path, corpus, retriever, _spec(id="x", evidence=[{"doc_id": "douglass_narrative_1845", "quote": q}]))
    assert out == [f"{p}:1: x: quote crosses a chunk boundary in douglass_narrative_1845; shorten it to one side: {q!r}"]

def test_build_raises_without_problem_list(tmp_path, corpus, retriever):
    p = tmp_path / "s.jsonl"; p.write_text(json.dumps(_spec(id="z", answer="In 1966 by Maulana Karenga.")) + "\n")
    with pytest.raises(DataError, match=rf"^{p}:1: z: field 'answer': require_citations is on but the answer has no {{i}} marker$"):
        build_examples(load_specs(p), corpus, retriever)

def test_check_specs_reports(tmp_path, corpus, retriever, capsys):
    buf = io.StringIO()
    assert check_specs([FIXTURE], corpus, retriever, out=buf) == []
    text = buf.getvalue()
    assert "10 specs in 1 file(s); 0 problems, 0 warnings" in text
    assert "train: 9 examples (target >= 300)" in text and "golden: 1 examples (target exactly 40)" in text
    p = tmp_path / "bad.jsonl"; p.write_text(json.dumps(_spec(id="y", persona="teacher")) + "\n")
    assert main(["data", "--no-budget", "check-specs", str(p)]) == 1
    assert f"{p}:1: field 'persona': expected one of educator, researcher, creator, builder; got 'teacher'" in capsys.readouterr().out

def test_token_budget_drops_distractors(tiny_model_dir, corpus, retriever, built):
    tok = load_tokenizer(tiny_model_dir)
    n = lambda e: len(tok.apply_chat_template(example_messages(e, corpus), tokenize=True)["input_ids"])
    specs = [s for s in load_specs(FIXTURE) if s.id == "fx-single-01"]
    full = [e for e in built if e.pair_id == "fx-single-01"]
    limit = max(n(e) for e in full) - 1
    small = build_examples(specs, corpus, retriever, fits=token_budget(tok, limit))
    assert [e.id for e in small] == [e.id for e in full]
    assert all(n(e) <= limit for e in small)
    assert all(set(e.gold.supporting) <= set(e.context) for e in small)
    with pytest.raises(DataError, match="the evidence passages alone exceed the token budget"):
        build_examples(specs, corpus, retriever, fits=token_budget(tok, 50))
