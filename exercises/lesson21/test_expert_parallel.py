"""Lesson 21, part 4: expert parallelism on gloo ranks (two processes on this machine).
Run: pytest exercises/lesson21"""

import torch

from course.distributed import count_collectives, run_ranks
from course.testing import assert_close
from exercises.lesson21.dispatch import moe_layer_spec
from exercises.lesson21.expert_parallel import ep_moe_layer


def _ep_rank(rank, world, xs, router_w, w_gate, w_up, w_down, k):
    per_rank = router_w.shape[0] // world
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    with count_collectives() as calls:
        out = ep_moe_layer(xs[rank], router_w, w_gate[mine], w_up[mine], w_down[mine], k)
    return out, dict(calls)


def test_two_ranks_equal_one_process():
    g = torch.Generator().manual_seed(0)
    n_experts, d_model, d_ff = 4, 8, 12
    xs = [torch.randn(5, d_model, generator=g), torch.randn(3, d_model, generator=g)]
    router_w = torch.randn(n_experts, d_model, generator=g)
    w_gate = torch.randn(n_experts, d_ff, d_model, generator=g) / d_model ** 0.5
    w_up = torch.randn(n_experts, d_ff, d_model, generator=g) / d_model ** 0.5
    w_down = torch.randn(n_experts, d_model, d_ff, generator=g) / d_ff ** 0.5
    want = moe_layer_spec(torch.cat(xs), router_w, w_gate, w_up, w_down, 2)
    results = run_ranks(_ep_rank, 2, xs, router_w, w_gate, w_up, w_down, 2)
    got = torch.cat([out for out, _ in results])
    assert_close(got, want, atol=1e-5, rtol=1e-5, what="ep_moe_layer on 2 ranks (5 + 3 tokens)",
                 reference="moe_layer_spec over all 8 tokens in one process")
    for rank, (_, calls) in enumerate(results):
        assert set(calls) <= {"all_to_all_single"} and sum(calls.values()) <= 4, (
            f"rank {rank} called {calls}; use at most four all_to_all_single")
