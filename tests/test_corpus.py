"""kwanzaa.corpus end to end: shipped sources, override directories, self-checking caches, chunk bounds, retrieval."""
import csv, gzip, hashlib, json, os, shutil, subprocess, sys, warnings
from pathlib import Path

import pytest

import kwanzaa.corpus as kc
from kwanzaa.corpus import (DEFAULT_NAMESPACES, MANIFEST_FIELDS, NAMESPACES, Corpus, CorpusError, Retriever,
                            build_corpus, chunk_text, export_sources, find_sources_dir, load_injections, load_manifest,
                            load_notes, load_sources, recall_at_k, shipped_sources_dir)
from kwanzaa.records import file_sha256
from kwanzaa.contract import AnswerCore, Chunk, assemble


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    "Every test starts without $KWANZAA_SOURCES, whatever the shell running pytest has set."
    monkeypatch.delenv("KWANZAA_SOURCES", raising=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    "A directory of the shipped texts, exported as plain files (a valid override directory)."
    return export_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(cache_dir=tmp_path_factory.mktemp("cache"), use_cache=False)


@pytest.fixture(scope="module")
def retriever(corpus):
    return Retriever(corpus)


def _copy(src, dest):
    shutil.copytree(src, dest)
    return dest


# -- the shipped texts and the manifest -------------------------------------------------------------------------------

def test_shipped_texts_match_the_manifest():
    manifest = load_manifest()
    assert len(manifest) == 18 and len({s.doc_id for s in manifest}) == 18
    assert all(s.namespace == "primary_sources" and s.filename == f"{s.doc_id}.txt" for s in manifest)
    d = shipped_sources_dir()
    assert d == Path(kc.__file__).parent / "corpus_data" / "sources"
    assert sorted(p.name for p in d.iterdir()) == sorted(f"{s.filename}.gz" for s in manifest)  # nothing else shipped
    total = 0
    for s in manifest:
        raw = (d / f"{s.filename}.gz").read_bytes(); total += len(raw)
        assert raw[4:8] == b"\0\0\0\0", s.filename  # gzip mtime 0: the same text always gives the same bytes
        assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == s.sha256, s.filename
    assert total < 1_500_000
    texts = load_sources()
    assert "I was born in Tuckahoe" in texts["douglass_narrative_1845"]
    assert "Four score and seven years ago" in texts["lincoln_gettysburg_address_1863"]


def test_manifest_provenance_columns():
    manifest = load_manifest()
    with open(kc._data_path("sources.csv"), newline="", encoding="utf-8") as f:
        assert tuple(csv.DictReader(f).fieldnames) == MANIFEST_FIELDS
    for s in manifest:
        assert s.license.startswith("Public Domain (US") and s.title and s.author and s.year
        assert "/" in s.source_repo and s.source_path and len(s.source_commit) == 40 and int(s.source_commit, 16) >= 0
        assert 20 <= len(s.cleaning) <= 250, s.doc_id
    amend = next(s for s in manifest if s.doc_id == "us_constitution_amendments_13_14_15")
    assert (amend.year, amend.year_text) == (1865, "1865-1870")
    assert amend.source_repo == "JesseKPhillips/USA-Constitution"


def test_data_card_table_matches_the_manifest():
    "DATA.md (top of the repository) carries the provenance table generated from sources.csv."
    data_md = Path(kc.__file__).parent.parent / "DATA.md"
    if not data_md.is_file(): pytest.skip("DATA.md is in the repository, not in an installed package")
    text = data_md.read_text(encoding="utf-8")
    table = text.split("<!-- begin sources table -->\n", 1)[1].split("<!-- end sources table -->", 1)[0]
    assert table == kc.sources_table()
    lines = table.splitlines()
    assert len(lines) == 20 and all(l.count(" | ") == 5 for l in lines[:1] + lines[2:])  # no stray "|" in a cell
    assert "CC BY 4.0" in text and "kwanzaa_notes.jsonl" in text and "injections.jsonl" in text


def test_manifest_errors_name_file_line_and_field(tmp_path):
    rows = list(csv.DictReader(open(kc._data_path("sources.csv"), encoding="utf-8")))
    rows[2]["namespace"] = "primary"
    bad = tmp_path / "sources.csv"
    with open(bad, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    with pytest.raises(CorpusError, match=r"sources\.csv:4: field 'namespace': 'primary' is not one of"):
        load_manifest(bad)
    with open(bad, "w", newline="", encoding="utf-8") as f:  # a manifest of the old format (no provenance columns)
        cols = [k for k in rows[0] if k != "cleaning"]
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore"); w.writeheader(); w.writerows(rows)
    with pytest.raises(CorpusError, match=r"sources\.csv:1: missing columns \['cleaning'\]"): load_manifest(bad)


# -- where the texts are read from ------------------------------------------------------------------------------------

def test_build_needs_nothing_outside_the_package(corpus, tmp_path, monkeypatch):
    "No argument, no $KWANZAA_SOURCES, a cwd with no shared/ anywhere above it: the shipped texts are used."
    assert "shared" not in Path(kc.__file__).read_text(encoding="utf-8")  # the package never looks for a shared folder
    monkeypatch.chdir(tmp_path); monkeypatch.setenv("KWANZAA_CACHE", str(tmp_path / "cache"))
    assert not [p for p in (tmp_path, *tmp_path.parents) if (p / "shared").exists()]
    assert find_sources_dir() == shipped_sources_dir()
    c = build_corpus()
    assert (c.hash, c.chunks) == (corpus.hash, corpus.chunks)
    assert (tmp_path / "cache" / "corpus" / f"{c.hash}.jsonl").is_file()
    code = "from kwanzaa.corpus import build_corpus; c = build_corpus(); print(c.hash, len(c))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "KWANZAA_CACHE": str(tmp_path / "cache2")}).stdout.split()
    assert out == [corpus.hash, str(len(corpus))]


def test_override_order(sources, tmp_path, monkeypatch):
    assert find_sources_dir() == shipped_sources_dir()
    monkeypatch.setenv("KWANZAA_SOURCES", str(sources))
    assert find_sources_dir() == sources
    assert find_sources_dir(tmp_path) == tmp_path  # explicit wins over the environment
    monkeypatch.setenv("KWANZAA_SOURCES", "")  # an empty variable is no override
    assert find_sources_dir() == shipped_sources_dir()


def test_override_with_the_shipped_texts_builds_the_same_corpus(sources, corpus, tmp_path, monkeypatch):
    a = build_corpus(sources, cache_dir=tmp_path / "a")
    monkeypatch.setenv("KWANZAA_SOURCES", str(sources))
    b = build_corpus(cache_dir=tmp_path / "b")
    assert a.hash == b.hash == corpus.hash and a.chunks == b.chunks == corpus.chunks
    assert a.sources_dir == b.sources_dir == sources


def test_override_missing_and_changed_files_are_named_with_the_fix(sources, tmp_path, monkeypatch):
    d = _copy(sources, tmp_path / "src")
    f = d / "plessy_v_ferguson_1896.txt"; f.write_text(f.read_text() + "\nAn added line.\n")
    (d / "wells_red_record_1895.txt").unlink()
    with pytest.raises(CorpusError) as e: build_corpus(d, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert msg.startswith(f"2 of 18 source files in {d} do not match the manifest")
    assert f"{f}: sha256 mismatch for plessy_v_ferguson_1896" in msg
    assert next(s.sha256 for s in load_manifest() if s.doc_id == "plessy_v_ferguson_1896") in msg and file_sha256(f) in msg
    assert f"{d / 'wells_red_record_1895.txt'}: missing (doc_id wells_red_record_1895)" in msg
    assert "the sources_dir argument" in msg and "remove that override to use the texts shipped with the package" in msg
    assert f"kwanzaa corpus export-sources {d}" in msg
    assert not (tmp_path / "cache").exists()  # nothing was built from bad texts
    monkeypatch.setenv("KWANZAA_SOURCES", str(d))
    with pytest.raises(CorpusError, match=r"comes from \$KWANZAA_SOURCES: remove that override"): build_corpus()
    export_sources(d)  # the fix the message gives
    assert build_corpus(cache_dir=tmp_path / "cache").hash == build_corpus(sources, cache_dir=tmp_path / "c2").hash


def test_override_directory_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("KWANZAA_SOURCES", str(tmp_path / "nope"))
    with pytest.raises(CorpusError) as e: build_corpus(cache_dir=tmp_path)
    msg = str(e.value)
    assert f"sources directory {tmp_path / 'nope'} does not exist" in msg and "$KWANZAA_SOURCES" in msg
    assert f"export-sources {tmp_path / 'nope'}" in msg


def test_override_of_gzipped_texts_and_a_damaged_one(tmp_path):
    "A directory of <filename>.gz files (a copy of the shipped ones) is read like the shipped one; a cut .gz is named."
    d = _copy(shipped_sources_dir(), tmp_path / "gz")
    assert load_sources(d) == load_sources()
    f = d / "jacobs_incidents_1861.txt.gz"; f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(CorpusError, match=r"jacobs_incidents_1861\.txt\.gz: unreadable gzip for jacobs_incidents_1861"):
        load_sources(d)


def test_export_sources_round_trip(tmp_path):
    out = export_sources(tmp_path / "a" / "b")  # parents are created
    assert out == tmp_path / "a" / "b"
    assert {p.name: file_sha256(p) for p in out.iterdir()} == {s.filename: s.sha256 for s in load_manifest()}
    assert load_sources(out) == load_sources()
    (out / "us_constitution_1787.txt").write_text("We the People")
    export_sources(out)  # restores a changed file
    assert file_sha256(out / "us_constitution_1787.txt") == next(s.sha256 for s in load_manifest() if s.doc_id == "us_constitution_1787")


def test_command_line(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "kwanzaa", "corpus", *a], capture_output=True, text=True,
                                    env={k: v for k, v in os.environ.items() if k != "KWANZAA_SOURCES"})
    r = run("export-sources", str(tmp_path / "t"))
    assert r.returncode == 0 and f"wrote 18 source texts to {tmp_path / 't'}" in r.stdout
    assert load_sources(tmp_path / "t") == load_sources()
    (tmp_path / "t" / "truth_narrative_1850.txt").unlink()
    r = run("check-sources", str(tmp_path / "t"))
    assert r.returncode == 1 and "truth_narrative_1850.txt: missing" in r.stderr and "export-sources" in r.stderr
    r = run("check-sources")
    assert r.returncode == 0 and "18 source texts" in r.stdout
    assert run().returncode == 2  # argparse: a subcommand is required


# -- the cache ----------------------------------------------------------------------------------------------------------

def _rebuilt(cache_dir):
    "build_corpus(cache_dir) that must warn that the cache file was damaged; returns (corpus, warning text)."
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        c = build_corpus(cache_dir=cache_dir)
    msgs = [str(x.message) for x in w if "corpus cache" in str(x.message)]
    assert len(msgs) == 1, msgs
    return c, msgs[0]


def test_truncated_cache_is_rebuilt(corpus, tmp_path):
    a = build_corpus(cache_dir=tmp_path)
    f = tmp_path / f"{a.hash}.jsonl"
    whole = f.read_bytes()
    f.write_bytes(whole[:len(whole) // 3])
    c, msg = _rebuilt(tmp_path)
    assert str(f) in msg and "truncated or edited" in msg and "rebuilding" in msg
    assert c.chunks == a.chunks == corpus.chunks and f.read_bytes() == whole  # rewritten whole
    f.write_bytes(whole.split(b"\n", 1)[0] + b"\n")  # only the header left
    assert _rebuilt(tmp_path)[0].chunks == a.chunks
    f.write_bytes(b"")
    assert _rebuilt(tmp_path)[0].chunks == a.chunks and f.read_bytes() == whole


def test_edited_cache_is_rebuilt(corpus, tmp_path):
    a = build_corpus(cache_dir=tmp_path)
    f = tmp_path / f"{a.hash}.jsonl"
    whole = f.read_text(encoding="utf-8")
    target = "douglass_narrative_1845::chunk::3"
    lines = whole.splitlines(keepends=True)
    i = next(i for i, l in enumerate(lines) if f'"{target}"' in l)
    row = json.loads(lines[i]); row["text"] = row["text"][::-1]  # one chunk's text edited
    f.write_text("".join(lines[:i] + [json.dumps(row) + "\n"] + lines[i + 1:]), encoding="utf-8")
    c, msg = _rebuilt(tmp_path)
    assert "does not match its sha256" in msg and c.chunks == corpus.chunks and f.read_text(encoding="utf-8") == whole
    f.write_text(whole.replace(f'"{target}"', '"douglass_narrative_1845::chunk::3x"'), encoding="utf-8")  # an id edited
    c, _ = _rebuilt(tmp_path)
    assert c.get(target).text == corpus.get(target).text  # never 'unknown chunk id'


def test_cache_header_is_checked(corpus, tmp_path):
    a = build_corpus(cache_dir=tmp_path)
    f = tmp_path / f"{a.hash}.jsonl"
    head, body = f.read_text(encoding="utf-8").split("\n", 1)
    h = json.loads(head)
    assert h == {"kwanzaa_corpus_cache": kc.CACHE_FORMAT, "key": a.hash, "chunks": len(corpus),
                 "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest()}
    assert h["sha256"] == a.content_sha256 == corpus.content_sha256
    f.write_text(json.dumps({**h, "chunks": len(corpus) + 1}) + "\n" + body, encoding="utf-8")  # count disagrees
    assert "header says" in _rebuilt(tmp_path)[1]
    f.write_text(json.dumps({**h, "key": "0" * 16}) + "\n" + body, encoding="utf-8")  # another corpus's file
    assert "is for corpus '0000000000000000'" in _rebuilt(tmp_path)[1]
    f.write_text(body, encoding="utf-8")  # the old format: chunks only, no header
    assert "not in the current format" in _rebuilt(tmp_path)[1]
    mtime = f.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a whole cache file is read without a warning and not rewritten
        assert build_corpus(cache_dir=tmp_path).chunks == corpus.chunks
    assert f.stat().st_mtime_ns == mtime


def test_source_hashes_are_in_the_cache_key():
    m, sha = kc._data_path("sources.csv"), [s.sha256 for s in load_manifest()]
    base = kc._corpus_hash(m, [], sha, 100, 200)
    assert base == kc._corpus_hash(m, [], list(sha), 100, 200)  # deterministic
    assert base != kc._corpus_hash(m, [], sha[:-1] + ["0" * 64], 100, 200)  # another text, another key
    assert base != kc._corpus_hash(m, [], sha, 100, 180)


def test_index_is_not_reused_for_other_chunks(corpus, tmp_path):
    "The saved BM25 index is named by the corpus hash and checked against the chunks' sha256."
    Retriever(Corpus(corpus.chunks, corpus.hash, cache_dir=tmp_path))
    (saved,) = [p for p in tmp_path.iterdir() if p.name.startswith(f"{corpus.hash}.bm25-")]
    assert (saved / "corpus.sha256").read_text().strip() == corpus.content_sha256
    edited = [corpus.chunks[0].model_copy(update={"text": "Tuckahoe " * 5}), *corpus.chunks[1:]]
    same_key = Corpus(edited, corpus.hash, cache_dir=tmp_path)  # same hash, same count, other chunks
    r = Retriever(same_key)
    assert r.search("Tuckahoe", k=5) == Retriever(Corpus(edited, "fresh")).search("Tuckahoe", k=5)
    assert r.search("Tuckahoe", k=1)[0][0].chunk_id == corpus.chunks[0].chunk_id
    assert (saved / "corpus.sha256").read_text().strip() == same_key.content_sha256  # replaced by the new one
    other = Corpus(corpus.chunks, "f" * 16, cache_dir=tmp_path)  # another hash: another index directory
    Retriever(other)
    assert len([p for p in tmp_path.iterdir() if ".bm25-" in p.name]) == 2


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
    with pytest.warns(UserWarning, match="unreadable"): assert build_corpus(sources, cache_dir=tmp_path).chunks == a.chunks
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



def test_a_short_tail_is_never_kept_alone():
    "A 150-word paragraph closes a chunk and leaves a 99-word last paragraph, under min_words: the two are re-cut."
    para = lambda n: " ".join(f"w{i}." if i % 10 == 9 else f"W{i}" if i % 10 == 0 else f"w{i}" for i in range(n))   # 10-word sentences
    sizes = [len(c.split()) for c in chunk_text(para(150) + "\n\n" + para(99))]
    assert sum(sizes) == 249 and min(sizes) >= 100 and max(sizes) <= 200, sizes
    sizes = [len(c.split()) for c in chunk_text(" ".join(["word"] * 299) + ".", 100, 200)]   # one long sentence too
    assert sum(sizes) == 299 and min(sizes) >= 100 and max(sizes) <= 200, sizes

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
