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
@pytest.mark.parametrize("n_kv_heads,start", [(2, 0), (4, 7), (1, 100)])
def test_decoder_layer_equals_reference(n_kv_heads, start):
    """Bugs: a missing residual, post-norm instead of pre-norm, attention that is not causal,
    a wrong GQA mapping (query head j reading KV head j % n_kv), SiLU on the up projection
    instead of the gate."""
    check_written_by_learner()
    cfg = tiny(n_kv_heads=n_kv_heads)
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
