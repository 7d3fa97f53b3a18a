"""Hidden grader, lesson 06: capacity plans on every GPU fixture, their properties, and the
fewest GPUs for a target.

The reference is the memory model stated in learning/lesson06.md#the-plan, written out here
with exact integers: usable per GPU = floor(memory_bytes x (1 - reserve)) - overhead; budget =
max(0, n x usable - weights); tokens = budget // KV bytes per token; batch = tokens // context.
Reserves are drawn from {0, 1/4, 1/2} so that the float product is exact.
"""

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hardware_fixtures
from course.config import LLAMA2_7B, LLAMA3_8B, SMOLLM2_135M, tiny
from exercises.lesson06.planner import min_gpus, plan

SPECS = hardware_fixtures.all_specs()
MODELS = [SMOLLM2_135M, LLAMA2_7B, LLAMA3_8B, tiny(n_layers=3, d_model=96, n_heads=6,
                                                     n_kv_heads=2, d_ff=200, vocab_size=999)]
PER = {"fp32": 4, "bf16": 2, "fp8": 1, "int4": 0.5}

gpus = st.sampled_from(sorted(SPECS))
models = st.sampled_from(range(len(MODELS)))
reserves = st.sampled_from([0.0, 0.25, 0.5])
formats = st.sampled_from(sorted(PER))


def params(cfg):
    d, q, kv = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head
    layer = 2 * d * q + 2 * d * kv + 3 * d * cfg.d_ff + 2 * d
    return cfg.n_layers * layer + cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2) + d


def expected(cfg, gpu, n, wfmt, kvfmt, reserve, overhead, context):
    per_gpu = gpu.memory_bytes * int(4 * (1 - reserve)) // 4 - overhead
    weights = math.ceil(params(cfg) * PER[wfmt])
    per_token = math.ceil(2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * PER[kvfmt])
    budget = max(0, n * per_gpu - weights)
    return dict(usable_bytes=n * per_gpu, weights_bytes=weights, kv_bytes_per_token=per_token,
                kv_budget_bytes=budget, max_tokens=budget // per_token,
                max_batch_at_context=budget // per_token // context)


@pytest.mark.points(3)
@given(gpu=gpus, m=models, n=st.integers(1, 9), wfmt=formats, kvfmt=formats, reserve=reserves,
       overhead=st.sampled_from([0, 2**30, 5 * 10**9]), context=st.integers(1, 40000))
def test_plan_matches_the_memory_model(gpu, m, n, wfmt, kvfmt, reserve, overhead, context):
    """Bugs: weights replicated on every GPU instead of split; the reserve ignored or taken
    from what is left after the weights; overhead charged once instead of per GPU; a negative
    budget when the weights do not fit; the batch computed for cfg.max_position instead of
    the context asked for."""
    cfg, spec = MODELS[m], SPECS[gpu]
    got = plan(cfg, spec, n, weight_bytes_per_param=wfmt, kv_bytes_per_elem=kvfmt,
               reserve_fraction=reserve, overhead_bytes=overhead, context_len=context)
    want = expected(cfg, spec, n, wfmt, kvfmt, reserve, overhead, context)
    wrong = {k: (getattr(got, k), v) for k, v in want.items() if getattr(got, k) != v}
    assert not wrong, (
        f"plan({cfg.name}, {gpu}, n_gpus={n}, weights {wfmt}, KV {kvfmt}, reserve {reserve}, "
        f"overhead {overhead:,} B, context {context}): fields (got, expected): {wrong}")
    assert got.fits == (want["max_batch_at_context"] >= 1)


@pytest.mark.points(2)
@given(m=models, gpu=gpus, extra=st.integers(1, 200 * 2**30), n=st.integers(1, 8),
       context=st.integers(1, 20000), more=st.integers(1, 20000),
       overhead=st.sampled_from([0, 3 * 2**30]))
def test_capacity_properties(m, gpu, extra, n, context, more, overhead):
    """Properties: more memory never gives less capacity; more GPUs never fewer tokens; a
    longer context never a larger batch; more reserve never more tokens; and once the weights
    fit, one more GPU adds exactly its usable bytes to the budget. Bugs: weights or overhead
    charged once per plan instead of split or per GPU; non-monotone rounding."""
    cfg, spec = MODELS[m], SPECS[gpu]
    bigger = dataclasses.replace(spec, memory_bytes=spec.memory_bytes + extra)
    kw = dict(overhead_bytes=overhead, context_len=context)
    base = plan(cfg, spec, n, **kw)
    assert plan(cfg, bigger, n, **kw).max_tokens >= base.max_tokens, "more memory, fewer tokens"
    nxt = plan(cfg, spec, n + 1, **kw)
    assert nxt.max_tokens >= base.max_tokens, "one more GPU, fewer tokens"
    longer = plan(cfg, spec, n, overhead_bytes=overhead, context_len=context + more)
    assert longer.max_batch_at_context <= base.max_batch_at_context, "longer context, more batch"
    assert plan(cfg, spec, n, reserve_fraction=0.3, **kw).max_tokens <= \
        plan(cfg, spec, n, reserve_fraction=0.2, **kw).max_tokens, "more reserve, more tokens"
    at_n = plan(cfg, spec, n, reserve_fraction=0.5, **kw)
    if at_n.kv_budget_bytes > 0:
        added = plan(cfg, spec, n + 1, reserve_fraction=0.5, **kw).kv_budget_bytes - \
            at_n.kv_budget_bytes
        per_gpu = spec.memory_bytes // 2 - overhead
        assert added == per_gpu, (
            f"going from {n} to {n + 1} GPUs ({spec.key}, reserve 0.5, overhead "
            f"{overhead:,} B) added {added:,} B to the KV budget; one GPU's usable memory "
            f"is {per_gpu:,} B (the weights are already paid for)")


@pytest.mark.points(2)
@given(m=models, gpu=gpus, batch=st.integers(1, 3000), context=st.integers(1, 32768),
       choices=st.one_of(st.none(), st.sets(st.integers(1, 16), min_size=1, max_size=5)),
       kvfmt=formats, overhead=st.sampled_from([0, 2**30]))
def test_min_gpus_is_minimal(m, gpu, batch, context, choices, kvfmt, overhead):
    """Bugs: an off-by-one (the first count with MORE than the target, so a target that
    exactly fills n GPUs gets n + 1, or one GPU too many);
    ignoring ``choices``; dropping the plan options (formats, overhead) passed through."""
    cfg, spec = MODELS[m], SPECS[gpu]
    kw = dict(kv_bytes_per_elem=kvfmt, overhead_bytes=overhead, reserve_fraction=0.25)
    allowed = sorted(choices) if choices is not None else list(range(1, 17))
    capacity = {n: expected(cfg, spec, n, "bf16", kvfmt, 0.25, overhead, context)
                ["max_batch_at_context"] for n in allowed}
    # the drawn target, and targets that exactly fill some allowed count (the edge case)
    targets = [batch] + [capacity[n] for n in allowed if capacity[n] >= 1][:2]
    for target in targets:
        fits = [n for n in allowed if capacity[n] >= target]
        want = fits[0] if fits else None
        got = min_gpus(cfg, spec, target, context, choices=choices, max_gpus=16, **kw)
        assert got == want, (
            f"min_gpus({cfg.name}, {spec.key}, batch {target} x {context} tokens, choices "
            f"{allowed if choices else '1..16'}, KV {kvfmt}, overhead {overhead:,} B) = {got}; "
            f"the fewest allowed GPUs that hold it: {want} (they hold "
            f"{capacity[want] if want else 0} sequences)")


@pytest.mark.points(1)
def test_usable_memory_rounds_down_and_none_when_nothing_fits():
    """Bugs: the usable bytes of a GPU rounded to the nearest byte (``round``) or up
    (``math.ceil``) instead of down, so a plan may count a byte that is not there (the hardware
    fixtures hold round numbers, so only a hand-built odd capacity shows it); ``min_gpus``
    returning the largest allowed count, or raising, when no allowed count is enough (the
    docstring promises None)."""
    odd = dataclasses.replace(SPECS["h100_sxm"], memory_bytes=1_000_000_002)
    for reserve, quarters in ((0.25, 3), (0.5, 2)):
        cfg = SMOLLM2_135M
        got = plan(cfg, odd, 1, reserve_fraction=reserve, context_len=100)
        want = expected(cfg, odd, 1, "bf16", "bf16", reserve, 0, 100)
        assert got.usable_bytes == 1_000_000_002 * quarters // 4 == want["usable_bytes"], (
            f"{1_000_000_002:,} B with reserve {reserve}: usable {got.usable_bytes:,} B; the "
            f"memory model floors the product to {want['usable_bytes']:,} B")
        assert got.max_tokens == want["max_tokens"]
    assert min_gpus(LLAMA3_8B, SPECS["h100_sxm"], 10**9, 4096, choices=(1, 2, 4, 8)) is None, \
        "a billion sequences of 4096 tokens fit on no allowed count: min_gpus must return None"
    assert min_gpus(LLAMA3_8B, SPECS["h100_sxm"], 10**9, 4096, max_gpus=3) is None
