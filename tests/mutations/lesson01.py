"""Planted bugs in the lesson 01 reference that its hidden graders must catch."""

from . import Mutation

H01 = "autograder/hidden/lesson01/"
COUNT = H01 + "test_counting_grading.py::"
FWD = H01 + "test_forward_grading.py::"

MUTATIONS = [
    Mutation("tied embeddings counted twice", "lesson01", "arithmetic.py",
             "    head = 0 if cfg.tie_embeddings else cfg.vocab_size * d\n",
             "    head = cfg.vocab_size * d\n",
             (COUNT + "test_param_count_equals_numel_for_any_shape",
              COUNT + "test_param_count_of_the_real_model")),
    Mutation("K and V sized with n_heads", "lesson01", "arithmetic.py",
             "    attention = d * q + 2 * d * kv + q * d\n",
             "    attention = 4 * d * q\n",
             (COUNT + "test_param_count_equals_numel_for_any_shape",
              COUNT + "test_published_sizes")),
    Mutation("FLOPs without the attention term", "lesson01", "arithmetic.py",
             "    return matmul + attention\n", "    return matmul\n",
             (COUNT + "test_flops_per_token_equals_flop_counter",
              COUNT + "test_flops_at_long_context_are_dominated_by_attention_as_expected")),
    Mutation("attention FLOPs with d_model instead of n_heads x d_head", "lesson01", "arithmetic.py",
             "    attention = 4 * cfg.n_layers * cfg.n_heads * cfg.d_head * context_len\n",
             "    attention = 4 * cfg.n_layers * cfg.d_model * context_len\n",
             (COUNT + "test_flops_at_long_context_are_dominated_by_attention_as_expected",)),
    Mutation("tied output projection counted as free", "lesson01", "arithmetic.py",
             "    matmul = 2 * (cfg.n_layers * weights_per_layer + cfg.vocab_size * d)\n",
             "    matmul = 2 * (cfg.n_layers * weights_per_layer\n"
             "                  + (0 if cfg.tie_embeddings else cfg.vocab_size * d))\n",
             (COUNT + "test_flops_per_token_equals_flop_counter",)),
    Mutation("RMSNorm without eps", "lesson01", "layers.py",
             "x32.pow(2).mean(dim=-1, keepdim=True) + eps)",
             "x32.pow(2).mean(dim=-1, keepdim=True))",
             (FWD + "test_rms_norm_equals_torch",)),
    Mutation("RMSNorm with the mean instead of the mean square", "lesson01", "layers.py",
             "x32.pow(2).mean(dim=-1, keepdim=True) + eps)",
             "x32.mean(dim=-1, keepdim=True).abs() + eps)",
             (FWD + "test_rms_norm_equals_torch", FWD + "test_decoder_layer_equals_reference")),
    Mutation("RMSNorm returns float32 for bfloat16 inputs", "lesson01", "layers.py",
             "    return weight * normed.to(x.dtype)\n", "    return weight.float() * normed\n",
             (FWD + "test_rms_norm_bfloat16_normalises_in_float32",)),
    Mutation("RoPE on interleaved pairs", "lesson01", "layers.py",
             "    x1, x2 = x.chunk(2, dim=-1)\n    rotated = torch.cat([-x2, x1], dim=-1)\n",
             "    x1, x2 = x[..., 0::2], x[..., 1::2]\n"
             "    rotated = torch.stack([-x2, x1], dim=-1).flatten(-2)\n"
             "    cos = cos[:, : x.shape[-1] // 2].repeat_interleave(2, dim=-1)\n"
             "    sin = sin[:, : x.shape[-1] // 2].repeat_interleave(2, dim=-1)\n",
             (FWD + "test_rope_equals_complex_rotation",
              FWD + "test_forward_matches_hf_transformers_on_the_real_model")),
    Mutation("RoPE angles in float32 half precision (exponent -i/d)", "lesson01", "layers.py",
             "    inv_freq = theta ** (-torch.arange(0, d_head, 2, dtype=torch.float64,\n",
             "    inv_freq = theta ** (-torch.arange(0, d_head // 2, dtype=torch.float64,\n",
             (FWD + "test_rope_equals_complex_rotation",)),
    Mutation("RoPE angles relative to the first position", "lesson01", "layers.py",
             "    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]",
             "    angles = (positions - positions[0]).to(torch.float64)[:, None] * inv_freq[None, :]",
             (FWD + "test_rope_equals_complex_rotation",)),
    Mutation("query head j reads KV head j % n_kv", "lesson01", "forward.py",
             "    v = heads(\"self_attn.v_proj.weight\", cfg.n_kv_heads)\n",
             "    v = heads(\"self_attn.v_proj.weight\", cfg.n_kv_heads)\n"
             "    k = k.repeat(1, cfg.n_heads // cfg.n_kv_heads, 1, 1)\n"
             "    v = v.repeat(1, cfg.n_heads // cfg.n_kv_heads, 1, 1)\n",
             (FWD + "test_decoder_layer_equals_reference",
              FWD + "test_forward_equals_reference_on_tiny_models")),
    Mutation("attention not causal", "lesson01", "forward.py",
             "    attn = F.scaled_dot_product_attention(q, k, v, is_causal=True,\n",
             "    attn = F.scaled_dot_product_attention(q, k, v, is_causal=False,\n",
             (FWD + "test_decoder_layer_equals_reference",
              FWD + "test_forward_equals_reference_on_tiny_models")),
    Mutation("final norm skipped", "lesson01", "forward.py",
             "    x = rms_norm(x, weights[\"model.norm.weight\"], cfg.rms_eps)\n", "",
             (FWD + "test_forward_equals_reference_on_tiny_models",)),
    Mutation("the reference forward re-exported", "lesson01", "layers.py",
             "import torch\n",
             "import torch\n\nfrom course.llama_reference import rms_norm as _rms_norm  # noqa: F401\n",
             (FWD + "test_submission_does_not_import_the_reference_forward",
              FWD + "test_rope_equals_complex_rotation")),
    Mutation("RMSNorm and RoPE taken from the given pieces of later lessons", "lesson01",
             "layers.py", "import torch
",
             "import torch

from course.hf_layers import hf_apply_rope as _rope  # noqa: F401
",
             (FWD + "test_submission_does_not_import_the_reference_forward",
              FWD + "test_rms_norm_equals_torch")),
]
