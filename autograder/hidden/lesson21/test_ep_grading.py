"""Hidden grader, lesson 21: expert parallelism on 2 and 4 gloo ranks.

Each rank holds its own tokens (different numbers, one rank none) and a contiguous block of
experts; the reference is a dropless loop over experts over all ranks' tokens in one process
(route each token with ``sorted``, then gather each expert's tokens), written here
independently of the code under test. Collectives are counted inside each rank
(course.distributed.count_collectives).
"""

import pytest
import torch
import torch.nn.functional as F

from course.distributed import count_collectives, run_ranks
from course.testing import assert_close
from exercises.lesson21.expert_parallel import ep_moe_layer

pytestmark = pytest.mark.distributed


def reference_layer(x, router_w, w_gate, w_up, w_down, k):
    probs = torch.softmax(x.float() @ router_w.float().T, dim=-1).tolist()
    out = torch.zeros(x.shape[0], x.shape[1], dtype=torch.float64)
    for t, row in enumerate(probs):
        ranked = sorted(range(len(row)), key=lambda e: (-row[e], e))[:k]
        total = sum(row[e] for e in ranked)
        h = x[t].double()
        for e in ranked:
            y = w_down[e].double() @ (F.silu(w_gate[e].double() @ h) * (w_up[e].double() @ h))
            out[t] += row[e] / total * y
    return out.to(x.dtype)


def _rank(rank, world, xs, router_w, w_gate, w_up, w_down, k):
    per_rank = router_w.shape[0] // world
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    with count_collectives() as calls:
        out = ep_moe_layer(xs[rank], router_w, w_gate[mine], w_up[mine], w_down[mine], k)
    return out, dict(calls)


@pytest.mark.points(4)
@pytest.mark.parametrize("world,counts,k", [(2, [6, 3], 2), (4, [5, 0, 7, 2], 2),
                                            (4, [3, 4, 1, 2], 1)])
def test_ep_layer_equals_one_process(world, counts, k):
    """Bugs: the returned outputs left in send order (the sort by destination rank not undone);
    send and receive split sizes swapped on the way back (wrong as soon as ranks hold different
    numbers of tokens); local expert ids sent as global ids; the router weights dropped; a rank
    with no tokens hanging or crashing; collectives other than all_to_all_single (an
    all_gather of every token to every rank) or more than four of them."""
    g = torch.Generator().manual_seed(world * 10 + k)
    n_experts, d_model, d_ff = 8, 6, 10
    xs = [torch.randn(n, d_model, generator=g) for n in counts]
    router_w = torch.randn(n_experts, d_model, generator=g)
    w_gate = torch.randn(n_experts, d_ff, d_model, generator=g) / d_model ** 0.5
    w_up = torch.randn(n_experts, d_ff, d_model, generator=g) / d_model ** 0.5
    w_down = torch.randn(n_experts, d_model, d_ff, generator=g) / d_ff ** 0.5
    want = reference_layer(torch.cat(xs), router_w, w_gate, w_up, w_down, k)
    results = run_ranks(_rank, world, xs, router_w, w_gate, w_up, w_down, k)
    got = torch.cat([out for out, _ in results])
    assert_close(got, want, atol=1e-5, rtol=1e-5,
                 what=f"ep_moe_layer on {world} ranks holding {counts} tokens, top-{k}",
                 reference="a dropless loop over experts over all tokens in one process")
    for rank, (_, calls) in enumerate(results):
        assert set(calls) <= {"all_to_all_single"} and sum(calls.values()) <= 4, (
            f"rank {rank} called {calls}: expert parallelism needs only all_to_all_single, "
            "at most four times (counts, vectors, expert ids, outputs)")
