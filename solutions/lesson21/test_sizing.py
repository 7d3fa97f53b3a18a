"""Lesson 21, part 3: total vs active parameters, and the bytes of expert parallelism.
Run: pytest exercises/lesson21"""

from course.moe import MIXTRAL_8X7B, MoEConfig, moe_config_from_hf
from exercises.lesson21.sizing import ep_all_to_all_bytes, moe_params


# The shape keys of mistralai/Mixtral-8x7B-v0.1's config.json
MIXTRAL_CONFIG_JSON = {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                       "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8,
                       "num_experts_per_tok": 2, "vocab_size": 32000, "tie_word_embeddings": False}


def test_mixtral_8x7b_total_and_active():
    assert moe_config_from_hf(MIXTRAL_CONFIG_JSON, "Mixtral-8x7B") == MIXTRAL_8X7B
    total, active = moe_params(MIXTRAL_8X7B)
    assert round(total / 1e9, 1) == 46.7, f"Mixtral-8x7B has about 46.7e9 parameters, got {total:,}"
    assert round(active / 1e9, 1) == 12.9, (
        f"Mixtral-8x7B computes each token with about 12.9e9 parameters (2 of 8 experts), "
        f"got {active:,}")


def test_one_expert_per_token_and_a_dense_model():
    cfg = MoEConfig("tiny", n_layers=1, d_model=4, n_heads=2, n_kv_heads=1, d_head=2, d_ff=6,
                    vocab_size=10, n_experts=3, top_k=1, tie_embeddings=True)
    # attention 2*4*4 + 2*4*2 = 48, norms 8, router 12, experts 3 x 72, embeddings 40, final norm 4
    assert moe_params(cfg) == (48 + 8 + 12 + 3 * 72 + 40 + 4, 48 + 8 + 12 + 72 + 40 + 4)


def test_all_to_all_bytes():
    assert ep_all_to_all_bytes(4096, 2, 4096, 8, 2) == 4096 * 2 * 4096 * 2 * 7 / 8
    assert ep_all_to_all_bytes(100, 2, 64, 1, 2) == 0, "one rank: every expert is local"
    assert ep_all_to_all_bytes(10, 1, 8, 2, 4) == 160, "half of 10 fp32 vectors of 8 leave"
