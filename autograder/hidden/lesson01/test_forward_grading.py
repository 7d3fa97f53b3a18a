"""Hidden grader, lesson 01: RMSNorm, RoPE, one decoder layer and the full forward pass.

References are independent of the submission: torch's own ``F.rms_norm``, RoPE written as a
complex multiplication, the course's reference Llama (``course.llama_reference``) on tiny
seeded models, and HF transformers' LlamaForCausalLM on the real SmolLM2-135M. Every grader
first checks that the submission did not import that reference (lesson 01 asks the learner to
write these pieces), see ``check_written_by_learner``.
"""

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import exercises.lesson01.forward as forward_module
from course import llama_reference as ref
from course.config import tiny
from course.model import random_weights
from course.testing import assert_close
from exercises.lesson01.forward import decoder_layer, layer_weights, llama_forward
from exercises.lesson01.layers import apply_rope, rms_norm, rope_cos_sin

# The course's oracle, its model code, HF transformers, and the given layer pieces of later
# lessons (course.hf_layers and course.cached_attention wrap transformers' RMSNorm and RoPE).
FORBIDDEN = ("course.llama_reference", "course.model", "course.hf_layers",
             "course.cached_attention", "transformers")
MESSAGE = "lesson 01 asks you to write these yourself"


def forbidden_uses(folder: Path) -> list[str]:
    """Imports of the course's reference forward (or HF) in the lesson's own modules."""
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("test_"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value] if "llama_reference" in node.value else []
            for name in names:
                if any(name == f or name.startswith(f + ".") or "llama_reference" in name
                       for f in FORBIDDEN):
                    found.append(f"{path.name}:{node.lineno}: {name}")
    return found


def check_written_by_learner() -> None:
    folder = Path(inspect.getsourcefile(forward_module)).parent
    found = forbidden_uses(folder)
    if found:
        raise AssertionError(f"{MESSAGE}: the lesson's modules use the course's reference "
                             f"model instead ({'; '.join(found)})")


@pytest.mark.points(1)
def test_submission_does_not_import_the_reference_forward():
    """Bug (integrity): rms_norm, apply_rope or llama_forward re-exported from
    course.llama_reference (the course's internal oracle), from HF transformers or from the
    given pieces of later lessons (course.hf_layers, course.cached_attention). The point
    is for a forward pass written by the learner, so it also has to run."""
    check_written_by_learner()
    cfg = tiny(n_layers=1)
    w = random_weights(cfg, seed=11)
    ids = torch.arange(5)[None]
    assert_close(llama_forward(w, cfg, ids), ref.llama_forward(w, cfg, ids), atol=1e-4, rtol=1e-4,
                 what="llama_forward logits (1 layer, 5 tokens)", reference="the course's reference Llama")


@pytest.mark.points(2)
@given(shape=st.sampled_from([(7,), (3, 16), (2, 5, 64)]), scale=st.sampled_from([1e-4, 1.0, 300.0]),
       eps=st.sampled_from([1e-6, 1e-5, 1e-2]), seed=st.integers(0, 2**16))
def test_rms_norm_equals_torch(shape, scale, eps, seed):
    """Bugs: eps left out (or added outside the square root), the mean instead of the mean
    square, the standard deviation (mean subtracted, LayerNorm), the weight ignored. Small
    inputs (scale 1e-4) make eps matter."""
    check_written_by_learner()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) * scale
    w = torch.randn(shape[-1], generator=gen)
    want = F.rms_norm(x, (shape[-1],), w, eps)
    assert_close(rms_norm(x, w, eps), want, atol=1e-5, rtol=1e-4,
                 what=f"rms_norm (eps {eps}, inputs of size {scale})", reference="F.rms_norm")


@pytest.mark.points(1)
def test_rms_norm_bfloat16_normalises_in_float32():
    """Bug: returning float32 for bfloat16 inputs (the weight applied before the cast back),
    or a normalisation far off in bfloat16. Reference: float32 F.rms_norm, cast, then the weight."""
    check_written_by_learner()
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 512, generator=gen) * 3).bfloat16()
    w = torch.randn(512, generator=gen).bfloat16()
    want = w * F.rms_norm(x.float(), (512,), None, 1e-5).bfloat16()
    got = rms_norm(x, w, 1e-5)
    assert_close(got, want, atol=1e-2, rtol=1e-2, what="rms_norm in bfloat16",
                 reference="float32 normalisation, cast to bfloat16, times the weight")


def rope_by_complex_numbers(x, positions, theta):
    """RoPE as e^{i angle} times the complex number (x[i], x[i + d/2]), in float64."""
    d = x.shape[-1]
    freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2:].double())
    z = z * torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64),
                        positions.double()[:, None] * freq)
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


@pytest.mark.points(2)
@given(d_head=st.sampled_from([2, 8, 64]), start=st.integers(0, 5000), length=st.integers(1, 6),
       theta=st.sampled_from([1e4, 1e5, 5e5]), seed=st.integers(0, 2**16))
def test_rope_equals_complex_rotation(d_head, start, length, theta, seed):
    """Bugs: interleaved pairs (2i, 2i+1) instead of HF's halves (i, i + d/2), the frequency
    exponent -i/d instead of -2i/d, sin and cos swapped, a rotation by -angle, positions
    ignored. Large start positions catch angles computed in low precision."""
    check_written_by_learner()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, length, d_head, generator=gen)
    positions = torch.arange(start, start + length)
    cos, sin = rope_cos_sin(positions, d_head, theta)
    assert_close(apply_rope(x, cos, sin), rope_by_complex_numbers(x, positions, theta),
                 atol=2e-4, rtol=1e-4, what=f"RoPE at positions {start}..{start + length - 1}",
                 reference="complex rotation of the pairs (i, i + d_head/2)")


@pytest.mark.points(2)
@pytest.mark.parametrize("n_kv_heads,start,theta", [(2, 0, 1e4), (4, 7, 1e5), (1, 100, 5e5)])
def test_decoder_layer_equals_reference(n_kv_heads, start, theta):
    """Bugs: a missing residual, post-norm instead of pre-norm, attention that is not causal
    (or a mask that lets a token see the next one), a wrong GQA mapping (query head j reading
    KV head j % n_kv), SiLU on the up projection instead of the gate, the RoPE base
    hard-coded to 10000 instead of cfg.rope_theta (SmolLM2 uses 100000)."""
    check_written_by_learner()
    cfg = dataclasses.replace(tiny(n_kv_heads=n_kv_heads), rope_theta=theta)
    w = random_weights(cfg, seed=n_kv_heads)
    x = torch.randn(2, 7, cfg.d_model, generator=torch.Generator().manual_seed(start))
    positions = torch.arange(start, start + 7)
    cos, sin = ref.rope_cos_sin(cfg, positions)
    p = "model.layers.1."
    h = x + ref.attention(w, p + "self_attn.", cfg, ref.rms_norm(x, w[p + "input_layernorm.weight"],
                          cfg.rms_eps), cos, sin, None, 1)
    want = h + ref.mlp(w, p + "mlp.", ref.rms_norm(h, w[p + "post_attention_layernorm.weight"],
                                                    cfg.rms_eps))
    assert_close(decoder_layer(x, layer_weights(w, 1), cfg, positions), want, atol=1e-5,
                 rtol=1e-5, what=f"decoder_layer at positions {start}..{start + 6}",
                 reference="the course's reference layer")


@pytest.mark.points(2)
@pytest.mark.parametrize("n_kv_heads,tied,length", [(2, False, 1), (4, True, 12), (1, False, 30)])
def test_forward_equals_reference_on_tiny_models(n_kv_heads, tied, length):
    """Bugs: non-causal attention, a wrong GQA head mapping, the final norm skipped, logits
    from the embedding without the output projection, one token (length 1) mishandled.
    (A constant position offset is invisible here: RoPE scores depend only on distances.)"""
    check_written_by_learner()
    cfg = dataclasses.replace(tiny(n_kv_heads=n_kv_heads, n_layers=3), tie_embeddings=tied)
    w = random_weights(cfg, seed=7)
    ids = torch.randint(0, cfg.vocab_size, (2, length), generator=torch.Generator().manual_seed(1))
    assert_close(llama_forward(w, cfg, ids), ref.llama_forward(w, cfg, ids), atol=1e-4, rtol=1e-4,
                 what=f"llama_forward logits ({length} tokens)",
                 reference="the course's reference Llama")


@pytest.mark.model
@pytest.mark.points(3)
def test_forward_matches_hf_transformers_on_the_real_model():
    """The real thing: SmolLM2-135M, 30 layers, GQA 9/3, rope base 100000, tied embeddings.
    Logits must equal HF transformers' LlamaForCausalLM (its own GGUF loader and its own
    forward) on the same file. Bugs: any of the above at real scale, RoPE halves vs pairs,
    a wrong rope base or eps taken from the config."""
    check_written_by_learner()
    from course.model import load_config, load_hf_model, load_tokenizer, load_weights

    cfg, weights, hf = load_config(), load_weights(), load_hf_model()
    tok = load_tokenizer()
    ids = torch.tensor([tok.encode("The capital of France is Paris. The capital of Italy is")])
    with torch.no_grad():
        want = hf(ids, attention_mask=torch.ones_like(ids)).logits
        got = llama_forward(weights, cfg, ids)
    assert_close(got, want, atol=1e-3, rtol=1e-4, what="llama_forward logits of SmolLM2-135M",
                 reference="HF transformers' LlamaForCausalLM on the same GGUF file")
    assert torch.equal(got[0, -1].argmax(), want[0, -1].argmax())


@pytest.mark.points(2)
def test_rms_norm_per_row_zero_rows_and_float16():
    """Bugs: the mean square taken over the whole tensor instead of each vector (rows of very
    different sizes expose it; equal-sized random rows hide it); eps added after the square
    root, so an all-zero vector gives 0 x inf = NaN instead of zeros; the normalisation done
    in the input's dtype, so float16 inputs above 256 overflow when squared (256^2 > 65504)
    and come out as zeros. Reference: torch's F.rms_norm in float32, cast, then the weight."""
    check_written_by_learner()
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, 32, generator=gen) * torch.tensor([[1e-3], [1.0], [1e3], [0.0], [40.0]])
    w = torch.randn(32, generator=gen)
    assert_close(rms_norm(x, w, 1e-6), F.rms_norm(x, (32,), w, 1e-6), atol=1e-5, rtol=1e-4,
                 what="rms_norm of rows of sizes 1e-3, 1, 1e3, 0 and 40 (eps 1e-6)",
                 reference="F.rms_norm, each row on its own")
    x16 = (torch.randn(3, 64, generator=gen) * torch.tensor([[300.0], [2000.0], [1.0]])).half()
    w16 = torch.randn(64, generator=gen).half()
    want = w16 * F.rms_norm(x16.float(), (64,), None, 1e-5).half()
    got = rms_norm(x16, w16, 1e-5)
    assert_close(got, want, atol=1e-2, rtol=1e-2, what="rms_norm of float16 rows of size 300 and 2000",
                 reference="float32 normalisation, cast to float16, times the weight")


@pytest.mark.points(1)
def test_rope_dtypes_float32_tables_and_bfloat16_queries():
    """Bugs (dtypes): cos and sin returned in float64 (the angles' dtype) instead of the
    float32 the docstring promises; apply_rope that returns float32 for bfloat16 queries
    (bf16 x times float32 cos promotes), which doubles the KV cache of every later lesson."""
    check_written_by_learner()
    positions = torch.arange(3, 9)
    cos, sin = rope_cos_sin(positions, 16, 1e4)
    assert cos.dtype == sin.dtype == torch.float32 and cos.shape == sin.shape == (6, 16), (
        f"rope_cos_sin must return float32 [T, d_head] = [6, 16] tables; got {cos.dtype} "
        f"{tuple(cos.shape)} and {sin.dtype} {tuple(sin.shape)}")
    x = torch.randn(2, 3, 6, 16, generator=torch.Generator().manual_seed(8)).bfloat16()
    got = apply_rope(x, cos, sin)
    assert got.dtype == torch.bfloat16, f"apply_rope of bfloat16 queries returned {got.dtype}"
    assert_close(got.float(), rope_by_complex_numbers(x.float(), positions, 1e4), atol=3e-2,
                 rtol=2e-2, what="RoPE of bfloat16 queries",
                 reference="complex rotation in float64 of the same (bf16) values")


@pytest.mark.points(1)
def test_apply_rope_is_vectorised():
    """Bug (cost): a Python loop over the channel pairs (apply_rope_spec, or a loop over
    positions): the number of tensor operations grows with d_head, where the rotate-half
    form issues the same few operations at any size."""
    check_written_by_learner()
    from course.counting import count_ops

    counts = {}
    for d_head in (8, 64):
        x = torch.randn(1, 2, 5, d_head, generator=torch.Generator().manual_seed(0))
        cos, sin = rope_cos_sin(torch.arange(5), d_head, 1e4)
        counts[d_head] = count_ops(lambda: apply_rope(x, cos, sin))  # noqa: B023
    assert counts[64] == counts[8], (
        f"apply_rope issued {counts[8]} tensor operations for d_head 8 and {counts[64]} for "
        "d_head 64: vectorise it (x * cos + rotate_half(x) * sin), no loop over channels")


@pytest.mark.points(1)
def test_forward_makes_new_tensors_on_the_inputs_device():
    """Bug (devices): positions built with ``torch.arange(T)`` and no ``device=`` (or RoPE
    frequencies made on the CPU): on a GPU the first forward fails mixing devices. Checked
    without a GPU on PyTorch's meta device (shapes only), which collides with any CPU tensor."""
    check_written_by_learner()
    cfg = tiny()
    w = {k: v.to("meta") for k, v in random_weights(cfg, seed=0).items()}
    ids = torch.zeros(2, 5, dtype=torch.int64, device="meta")
    try:
        logits = llama_forward(w, cfg, ids)
    except RuntimeError as err:
        if "device" not in str(err):
            raise
        raise AssertionError(f"llama_forward mixed devices ({err}); make every new tensor on "
                             "input_ids.device, e.g. torch.arange(T, device=input_ids.device)") from None
    assert logits.device.type == "meta" and logits.shape == (2, 5, cfg.vocab_size)
