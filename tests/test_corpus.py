"""kwanzaa.corpus end to end: sources over real HTTP on loopback, deterministic builds, chunk bounds, retrieval."""
import csv, functools, http.server, json, os, shutil, subprocess, sys, threading
from pathlib import Path

import pytest

import kwanzaa.corpus as kc
from kwanzaa.corpus import (DEFAULT_NAMESPACES, NAMESPACES, CorpusError, Retriever, SourcesNotFoundError, build_corpus,
                            chunk_text, fetch_sources, find_sources_dir, load_injections, load_manifest, load_notes,
                            recall_at_k, verify_sources)
from kwanzaa.config import file_sha256
from kwanzaa.contract import AnswerCore, Chunk, assemble


@pytest.fixture(scope="module")
def sources():
    try: return find_sources_dir()
    except SourcesNotFoundError as e: pytest.skip(f"primary-source texts not available here: {e}")


@pytest.fixture(scope="module")
def corpus(sources, tmp_path_factory):
    return build_corpus(sources, cache_dir=tmp_path_factory.mktemp("cache"), use_cache=False)


@pytest.fixture(scope="module")
def retriever(corpus):
    return Retriever(corpus)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: list = []
    def log_message(self, *a): pass
    def do_GET(self):
        type(self).requests.append(self.path)
        return super().do_GET()


@pytest.fixture
def serve():
    "Serve a directory over HTTP on 127.0.0.1 (a real server in a thread); yields a function dir -> base_url."
    servers = []
    def start(directory):
        _Quiet.requests = []
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"
    yield start
    for s in servers: s.shutdown(); s.server_close()


def _copy_sources(src, dest):
    dest.mkdir(parents=True, exist_ok=True)
    for s in load_manifest(): shutil.copy(Path(src) / s.filename, dest / s.filename)
    return dest


# -- manifest ---------------------------------------------------------------------------------------------------------

def test_manifest_matches_the_shipped_files(sources):
    manifest = load_manifest()
    assert len(manifest) == 18 and len({s.doc_id for s in manifest}) == 18
    assert all(s.namespace == "primary_sources" and s.filename == f"{s.doc_id}.txt" for s in manifest)
    for s in manifest: assert file_sha256(Path(sources) / s.filename) == s.sha256, s.filename
    amend = next(s for s in manifest if s.doc_id == "us_constitution_amendments_13_14_15")
    assert (amend.year, amend.year_text) == (1865, "1865-1870")
    assert all(s.download_url.startswith("https://www.gutenberg.org/cache/epub/")
               for s in manifest if "gutenberg.org/ebooks/" in s.canonical_url)


def test_no_source_text_is_committed():
    "The package ships the manifest, never the texts: no shipped file repeats a sentence of a source."
    data = Path(kc.__file__).parent / "corpus_data"
    shipped = " ".join(p.read_text(encoding="utf-8", errors="ignore") for p in data.rglob("*") if p.is_file())
    assert "I was born in Tuckahoe" not in shipped and "Four score and seven years ago" not in shipped
    assert not list(data.rglob("*.txt"))


def test_manifest_errors_name_file_line_and_field(tmp_path):
    rows = list(csv.DictReader(open(kc._data_path("sources.csv"), encoding="utf-8")))
    rows[2]["namespace"] = "primary"
    bad = tmp_path / "sources.csv"
    with open(bad, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    with pytest.raises(CorpusError, match=r"sources\.csv:4: field 'namespace': 'primary' is not one of"):
        load_manifest(bad)


# -- finding and fetching sources -------------------------------------------------------------------------------------

def test_fetch_over_loopback_then_build(sources, tmp_path, serve):
    base = serve(_copy_sources(sources, tmp_path / "mirror"))
    dest = fetch_sources(tmp_path / "got", base_url=base)
    assert sorted(_Quiet.requests) == sorted(f"/{s.filename}" for s in load_manifest())
    assert len(verify_sources(dest)) == 18
    fetch_sources(dest, base_url=base)  # everything present and verified: nothing is downloaded again
    assert len(_Quiet.requests) == 18
    a = build_corpus(dest, cache_dir=tmp_path / "c1")
    b = build_corpus(sources, cache_dir=tmp_path / "c2")
    assert [(c.chunk_id, c.text) for c in a] == [(c.chunk_id, c.text) for c in b] and a.hash == b.hash


def test_fetch_sha256_mismatch_is_refused(sources, tmp_path, serve):
    mirror = _copy_sources(sources, tmp_path / "mirror")
    (mirror / "lincoln_gettysburg_address_1863.txt").write_text("Four score and eight years ago ...\n")
    expected = next(s.sha256 for s in load_manifest() if s.doc_id == "lincoln_gettysburg_address_1863")
    got = file_sha256(mirror / "lincoln_gettysburg_address_1863.txt")
    with pytest.raises(CorpusError) as e: fetch_sources(tmp_path / "got", base_url=serve(mirror))
    msg = str(e.value)
    assert "lincoln_gettysburg_address_1863.txt: sha256 mismatch" in msg and expected in msg and got in msg
    assert "base_url" in msg
    assert not (tmp_path / "got" / "lincoln_gettysburg_address_1863.txt").exists()
    assert len(list((tmp_path / "got").glob("*.txt"))) == 17 and not list((tmp_path / "got").glob(".*part"))


def test_fetch_uses_download_url_and_explains_missing_ones(sources, tmp_path, serve):
    "Without base_url each source's download_url is used; a source without one is reported with the fix."
    base = serve(_copy_sources(sources, tmp_path / "mirror"))
    rows = list(csv.DictReader(open(kc._data_path("sources.csv"), encoding="utf-8")))[:3]
    rows[0]["download_url"], rows[1]["download_url"] = f"{base}/{rows[0]['filename']}", f"{base}/nope.txt"
    rows[2]["download_url"] = ""
    man = tmp_path / "sources.csv"
    with open(man, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    with pytest.raises(CorpusError) as e: fetch_sources(tmp_path / "got", manifest=load_manifest(man))
    msg = str(e.value)
    assert "2 source(s) could not be fetched" in msg and "404" in msg and "pass base_url=MIRROR" in msg
    assert [p.name for p in (tmp_path / "got").glob("*.txt")] == [rows[0]["filename"]]


def test_find_sources_dir_order_and_message(tmp_path, monkeypatch):
    monkeypatch.delenv("KWANZAA_SOURCES", raising=False)
    monkeypatch.setenv("KWANZAA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kc, "_shared_candidates", lambda: [tmp_path / "shared" / "corpus" / "raw"])
    with pytest.raises(SourcesNotFoundError) as e: find_sources_dir()
    msg = str(e.value)
    for s in (str(tmp_path / "shared" / "corpus" / "raw"), str(tmp_path / "cache" / "sources"), "sources_dir=",
              "--sources", "KWANZAA_SOURCES", "fetch_sources"):
        assert s in msg
    (tmp_path / "cache" / "sources").mkdir(parents=True); (tmp_path / "cache" / "sources" / "a.txt").write_text("x")
    assert find_sources_dir() == tmp_path / "cache" / "sources"  # the fetch destination is found last
    (tmp_path / "shared" / "corpus" / "raw").mkdir(parents=True); (tmp_path / "shared/corpus/raw/b.txt").write_text("x")
    assert find_sources_dir() == tmp_path / "shared" / "corpus" / "raw"
    monkeypatch.setenv("KWANZAA_SOURCES", str(tmp_path / "env"))
    with pytest.raises(SourcesNotFoundError, match=r"from the \$KWANZAA_SOURCES\) does not exist"): find_sources_dir()
    (tmp_path / "env").mkdir()
    assert find_sources_dir() == tmp_path / "env"
    assert find_sources_dir(tmp_path) == tmp_path  # explicit wins


def test_default_search_finds_shared_from_cwd(sources, tmp_path, monkeypatch):
    "The shared/corpus/raw sibling is found walking up from a subdirectory of the checkout, e.g. nbs/."
    monkeypatch.delenv("KWANZAA_SOURCES", raising=False)
    root = tmp_path / "work"; _copy_sources(sources, root / "shared" / "corpus" / "raw")
    (root / "main" / "nbs").mkdir(parents=True); monkeypatch.chdir(root / "main" / "nbs")
    assert find_sources_dir() == (root / "shared" / "corpus" / "raw").resolve()


def test_build_refuses_a_changed_source(sources, tmp_path):
    d = _copy_sources(sources, tmp_path / "src")
    f = d / "plessy_v_ferguson_1896.txt"; f.write_text(f.read_text() + "\nAn added line.\n")
    with pytest.raises(CorpusError) as e: build_corpus(d, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert f"{f}: sha256 mismatch for plessy_v_ferguson_1896" in msg
    assert f"expected {load_manifest()[0].sha256}" not in msg  # it names plessy's hash, not another's
    assert next(s.sha256 for s in load_manifest() if s.doc_id == "plessy_v_ferguson_1896") in msg
    assert file_sha256(f) in msg
    f.unlink()
    with pytest.raises(CorpusError, match="plessy_v_ferguson_1896.txt: missing"): build_corpus(d, cache_dir=tmp_path / "cache")


# -- chunking and the built corpus -------------------------------------------------------------------------------------

def test_two_builds_are_identical_and_cached(sources, corpus, tmp_path):
    a = build_corpus(sources, cache_dir=tmp_path, use_cache=False)
    cached = tmp_path / f"{a.hash}.jsonl"
    assert cached.is_file() and a.hash == corpus.hash
    mtime = cached.stat().st_mtime_ns
    b = build_corpus(sources, cache_dir=tmp_path)
    assert cached.stat().st_mtime_ns == mtime  # read, not rewritten
    assert [(c.chunk_id, c.text) for c in a] == [(c.chunk_id, c.text) for c in b] == [(c.chunk_id, c.text) for c in corpus]
    assert a.chunks == b.chunks
    cached.write_text("not json\n")  # a damaged cache file is rebuilt, not trusted
    assert build_corpus(sources, cache_dir=tmp_path).chunks == a.chunks
    assert build_corpus(sources, cache_dir=tmp_path, max_words=180).hash != a.hash  # chunker params are in the key


def test_build_is_identical_across_processes(sources, corpus, tmp_path):
    code = ("import sys, json; from kwanzaa.corpus import build_corpus, Retriever; c = build_corpus(sys.argv[1], "
            "cache_dir=sys.argv[2], use_cache=False); r = Retriever(c); print(json.dumps([c.hash, len(c), "
            "[(x.chunk_id, s) for x, s in r.search('separate but equal railway carriages', k=10)]]))")
    outs = [subprocess.run([sys.executable, "-c", code, str(sources), str(tmp_path / seed)], capture_output=True,
                           text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert outs[0] == outs[1]
    h, n, hits = json.loads(outs[0])
    assert (h, n) == (corpus.hash, len(corpus)) and len(hits) == 10


def test_chunk_ids_metadata_and_sizes(corpus):
    manifest = {s.doc_id: s for s in load_manifest()}
    by_doc = {}
    for c in corpus:
        assert isinstance(c, Chunk)
        by_doc.setdefault(c.doc_id, []).append(c)
    for doc_id, chunks in by_doc.items():
        assert [c.chunk_id for c in chunks] == [f"{doc_id}::chunk::{i}" for i in range(len(chunks))]
    for doc_id, s in manifest.items():
        for c in by_doc[doc_id]:
            assert (c.title, c.year, c.license, c.canonical_url, c.namespace) == (s.title, s.year, s.license, s.canonical_url, "primary_sources")
            assert 100 <= len(c.text.split()) <= 200, (c.chunk_id, len(c.text.split()))
    # documented edge case: project-written documents shorter than min_words are one short chunk each
    for d in load_notes() + load_injections():
        n = len(d["text"].split())
        if n <= 200: assert [c.text.split() for c in by_doc[d["doc_id"]]] == [d["text"].split()], d["doc_id"]


def test_chunks_only_change_whitespace(sources, corpus):
    "Concatenated, the chunks of a document are its words in order: nothing lost, added or reordered."
    for s in load_manifest():
        words = (Path(sources) / s.filename).read_text(encoding="utf-8").split()
        assert [w for c in corpus.doc_chunks(s.doc_id) for w in c.text.split()] == words, s.doc_id


@pytest.mark.parametrize("min_words,max_words", [(100, 200), (40, 80), (150, 200)])
def test_chunk_text_bounds_on_real_text(sources, min_words, max_words):
    text = (Path(sources) / "jacobs_incidents_1861.txt").read_text(encoding="utf-8")
    sizes = [len(c.split()) for c in chunk_text(text, min_words, max_words)]
    assert max(sizes) <= max_words  # a hard limit
    assert min(sizes[:-1]) >= min_words  # only a document's last chunk may fall short (documented edge case)


def test_chunk_text_edge_cases():
    assert chunk_text("Only a few words here.") == ["Only a few words here."]  # shorter than min_words: one chunk
    assert chunk_text("") == []
    verse = "\n".join(["We wear the mask that grins and lies,", "It hides our cheeks and shades our eyes,--"] * 3)
    assert chunk_text(verse, 5, 50) == [verse]  # verse keeps its line breaks
    wrapped = "I was born in Tuckahoe, near Hillsborough, and about twelve miles from\nEaston, in Talbot county, Maryland."
    assert chunk_text(wrapped) == [" ".join(wrapped.split())]  # hard-wrapped prose is re-flowed
    one_long = " ".join(["word"] * 450) + "."  # a sentence longer than max_words is cut evenly
    assert [len(c.split()) for c in chunk_text(one_long)] == [150, 150, 150]
    with pytest.raises(ValueError, match="min_words"): chunk_text("x", 0, 10)


def test_notes_and_injections(corpus):
    inj = load_injections()
    assert [d["doc_id"] for d in inj] == [f"inj-{i:02d}" for i in range(1, 11)]
    for d in inj:
        assert 60 <= len(d["text"].split()) <= 120 and d["attack"] and d["attack_kind"]
        c = corpus.get(f"{d['doc_id']}::chunk::0")
        assert c.namespace == "adversarial" and c.license == "CC-BY-4.0"
    for d in load_notes():
        assert corpus.get(f"{d['doc_id']}::chunk::0").namespace == "kwanzaa_notes"


def test_build_without_notes(sources, corpus, tmp_path, monkeypatch):
    "The notes file is optional: without it the corpus has no kwanzaa_notes chunks and a different hash."
    real = kc._data_path
    monkeypatch.setattr(kc, "_data_path", lambda name: tmp_path / "absent.jsonl" if name == "kwanzaa_notes.jsonl" else real(name))
    c = build_corpus(sources, cache_dir=tmp_path / "cache")
    assert not [x for x in c if x.namespace == "kwanzaa_notes"] and c.hash != corpus.hash
    assert len(c) == len(corpus) - sum(1 for x in corpus if x.namespace == "kwanzaa_notes")


def test_unknown_chunk_id(corpus):
    with pytest.raises(KeyError, match=r"did you mean .*plessy_v_ferguson_1896::chunk::1"):
        corpus.get("plessy_v_ferguson_1896::chunk:1")
    with pytest.raises(KeyError, match="did you mean inj-04::chunk::0"): corpus.get("inj-04")
    with pytest.raises(KeyError, match="unknown chunk id"): corpus.get("zzz")


# -- retrieval --------------------------------------------------------------------------------------------------------

def test_retriever_namespaces_and_determinism(corpus, retriever):
    q = "kinara seven candles Kwanzaa"
    default = retriever.search(q, k=30)
    assert default == retriever.search(q, k=30) == Retriever(corpus).search(q, k=30)
    assert {c.namespace for c, _ in default} <= set(DEFAULT_NAMESPACES)
    assert any(c.namespace == "adversarial" for c, _ in retriever.search(q, k=30, namespaces=NAMESPACES))
    assert {c.namespace for c, _ in retriever.search(q, k=30, namespaces="primary_sources")} <= {"primary_sources"}
    scores = [s for _, s in default]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    with pytest.raises(ValueError, match="allowed"): retriever.search(q, namespaces=["primary"])
    with pytest.raises(ValueError, match="k must be"): retriever.search(q, k=0)


def test_saved_index_equals_a_fresh_one(corpus, tmp_path):
    "The index saved next to a built corpus gives exactly the scores of an index built from scratch; a damaged one is rebuilt."
    fresh = Retriever(kc.Corpus(corpus.chunks, corpus.hash))  # no cache_dir: always indexed from the texts
    c = kc.Corpus(corpus.chunks, corpus.hash, cache_dir=tmp_path)
    first, loaded = Retriever(c), Retriever(c)
    saved = [p for p in tmp_path.iterdir() if p.name.startswith(f"{corpus.hash}.bm25-")]
    assert len(saved) == 1 and saved[0].is_dir()
    qs = ["Where was Frederick Douglass born?", "kinara candles", "the of and", "", "Tuckahoe Talbot county Maryland"]
    for q in qs:
        assert fresh.scores(q).tolist() == first.scores(q).tolist() == loaded.scores(q).tolist(), q
        assert fresh.search(q, k=20, namespaces=NAMESPACES) == loaded.search(q, k=20, namespaces=NAMESPACES)
    for f in saved[0].iterdir(): f.write_text("damaged")
    assert Retriever(c).scores(qs[0]).tolist() == fresh.scores(qs[0]).tolist()
    assert Retriever(c).search(qs[0]) == fresh.search(qs[0])  # and the rebuilt index was saved again


def test_retriever_ties_follow_chunk_order(corpus, retriever):
    "Chunks with equal scores come back in corpus order (the Dunbar and Woodson texts repeat short lines)."
    q = "CHAPTER"
    hits = retriever.search(q, k=200, namespaces=NAMESPACES)
    for (a, sa), (b, sb) in zip(hits, hits[1:]):
        if sa == sb: assert corpus.index(a.chunk_id) < corpus.index(b.chunk_id)
    assert any(sa == sb for (_, sa), (_, sb) in zip(hits, hits[1:]))  # the test saw at least one tie


def test_recall_at_k_on_hand_written_questions(corpus, retriever):
    def gold(quote, doc_id=None): return [c.chunk_id for c in corpus.find(quote, doc_id)]
    qs = [("What did the Brown decision say about separate educational facilities?", gold("inherently unequal", "brown_v_board_of_education_1954")),
          ("Which amendment abolished slavery and involuntary servitude?", gold("Neither slavery nor involuntary servitude")),
          ("What did Harlan say about the constitution being color-blind?", gold("Our constitution is color-blind")),
          ("Where was Frederick Douglass born?", gold("I was born in Tuckahoe"))]
    assert all(len(g) == 1 for _, g in qs)
    ranks = []
    for q, g in qs:
        ids = [c.chunk_id for c, _ in retriever.search(q, k=len(corpus))]
        ranks.append(ids.index(g[0]) + 1 if g[0] in ids else None)
    for k in (1, 4, 10):  # recall@k is exactly the share of gold ranks <= k
        assert recall_at_k(retriever, qs, k) == sum(r is not None and r <= k for r in ranks) / len(qs)
    with pytest.raises(KeyError): recall_at_k(retriever, [("q", ["nope::chunk::0"])])
    with pytest.raises(ValueError): recall_at_k(retriever, [])


def test_retrieved_chunks_assemble_into_an_answer_document(retriever):
    "Cross-module: chunks from the retriever carry the metadata kwanzaa.contract copies into sources."
    hits = retriever.search("Which amendment abolished slavery and involuntary servitude?", k=3)
    chunks, scores = [c for c, _ in hits], [s for _, s in hits]
    core = AnswerCore(status="answered", citations=[1], answer="The Thirteenth Amendment did [1].", unknowns=[])
    doc = assemble(core, chunks, "Which amendment abolished slavery?", scores=scores)
    src = doc.sources[0]
    assert (src.chunk_id, src.canonical_url, src.year, src.license) == (chunks[0].chunk_id, chunks[0].canonical_url,
                                                                        chunks[0].year, chunks[0].license)
