"""Hidden graders, lesson 20: the pipelined forward on 1, 2 and 3 gloo ranks.

The oracle is HF transformers' LlamaForCausalLM on the whole model in the test process
(course.model.hf_model_from_weights); each rank builds its stage with the given build_stage.
Messages are counted in every rank with course.distributed.count_collectives; torch's send
may call isend inside (and recv irecv), so a rank's message count is the larger of the two.
"""

import pytest
import torch

from course.config import tiny
from course.distributed import count_collectives, run_ranks
from course.model import hf_model_from_weights, random_weights
from course.testing import assert_close
from exercises.lesson20.pipeline import build_stage, pipeline_forward, stage_weights
from exercises.lesson20.schedule import split_layers

pytestmark = pytest.mark.distributed

# A rank that waits for a message no rank sends (a deadlock) ends the run with an error after
# this many seconds. Under the grader each rank is a fresh process that imports torch: on a
# 2-core machine at load 9 the whole 3-rank test took 16 s (HF oracle included); 90 s keeps a
# correct but slower pipeline, graded beside other jobs, clear of the limit, while a deadlock
# still fails within a minute and a half.
TIMEOUT_S = 90


def _rank(rank, world, cfg, weights, microbatches, stages):
    layers = stages[rank]
    first, last = rank == 0, rank == world - 1
    stage = build_stage(cfg, stage_weights(weights, layers, first, last), layers, first, last)
    shape = (*microbatches[0].shape, cfg.d_model)
    with count_collectives() as calls:
        out = pipeline_forward(stage, list(microbatches) if first else None, len(microbatches),
                               shape)
    return out, dict(calls)


def _messages(calls, verbs):
    return max((calls.get(v, 0) for v in verbs), default=0)


def _check(results, expected, world, m):
    for rank, (out, calls) in enumerate(results):
        if rank < world - 1:
            assert out == [], (f"rank {rank} of {world}: only the last stage returns outputs, "
                               f"got a list of {len(out)}")
        extra = set(calls) - {"send", "isend", "recv", "irecv"}
        assert not extra, f"rank {rank}: no collective but send/recv expected, saw {calls}"
        sends, recvs = _messages(calls, ("send", "isend")), _messages(calls, ("recv", "irecv"))
        want = (m if rank < world - 1 else 0, m if rank > 0 else 0)
        assert (sends, recvs) == want, (
            f"rank {rank} of {world}: {sends} sends and {recvs} receives for {m} micro-batches; "
            f"expected {want[0]} and {want[1]} (one message per micro-batch per stage boundary)")
    out = results[-1][0]
    assert len(out) == m, f"last rank returned {len(out)} outputs for {m} micro-batches"
    for i, (got, want) in enumerate(zip(out, expected)):
        assert_close(got, want, atol=1e-4, rtol=1e-4,
                     what=f"logits of micro-batch {i} on the last of {world} stages",
                     reference="HF transformers' model run whole in one process")


def _setup(n_layers, m, seed):
    cfg = tiny(n_layers=n_layers)
    weights = random_weights(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed)
    # every micro-batch different, rows within one different too
    microbatches = [torch.randint(0, cfg.vocab_size, (2, 6), generator=g) for _ in range(m)]
    with torch.no_grad():
        hf = hf_model_from_weights(cfg, weights)
        expected = [hf(ids).logits for ids in microbatches]
    return cfg, weights, microbatches, expected


@pytest.mark.points(4)
def test_three_uneven_stages_equal_the_whole_model():
    """Bugs: micro-batches received from the wrong rank (rank + 1: the ranks wait for each
    other forever, which run_ranks ends with an error), a send past the last rank, outputs
    returned out of order or on every rank, the middle stage skipped or run twice, an extra
    message per micro-batch. Four layers over three stages: 2, 1, 1."""
    cfg, weights, microbatches, expected = _setup(4, 4, 3)
    stages = split_layers(4, 3)
    results = run_ranks(_rank, 3, cfg, weights, microbatches, stages, timeout=TIMEOUT_S)
    _check(results, expected, 3, 4)


@pytest.mark.points(2)
def test_one_stage_and_one_microbatch():
    """Bugs: world 1 still sends or receives (to itself, or to rank 1 that does not exist);
    a single micro-batch (m = 1) lost at a boundary."""
    cfg, weights, microbatches, expected = _setup(2, 1, 4)
    results = run_ranks(_rank, 1, cfg, weights, microbatches, [range(2)], timeout=TIMEOUT_S)
    _check(results, expected, 1, 1)
    results = run_ranks(_rank, 2, cfg, weights, microbatches, split_layers(2, 2),
                        timeout=TIMEOUT_S)
    _check(results, expected, 2, 1)
