"""Lesson 20, part 2: a pipelined forward on 2 gloo ranks equals HF transformers' model.
Run: pytest exercises/lesson20"""

import torch

from course.config import tiny
from course.distributed import count_collectives, run_ranks
from course.model import hf_model_from_weights, random_weights
from exercises.lesson20.pipeline import build_stage, pipeline_forward, stage_weights
from exercises.lesson20.schedule import split_layers


def pipeline_rank(rank, world, cfg, weights, microbatches):
    layers = split_layers(cfg.n_layers, world)[rank]
    first, last = rank == 0, rank == world - 1
    stage = build_stage(cfg, stage_weights(weights, layers, first, last), layers, first, last)
    shape = (*microbatches[0].shape, cfg.d_model)
    with count_collectives() as calls:
        out = pipeline_forward(stage, microbatches if first else None, len(microbatches), shape)
    return out, dict(calls)


def test_two_stage_pipeline_equals_the_single_process_model():
    cfg = tiny(n_layers=3)
    weights = random_weights(cfg, seed=0)
    g = torch.Generator().manual_seed(0)
    microbatches = [torch.randint(0, cfg.vocab_size, (2, 5), generator=g) for _ in range(3)]
    with torch.no_grad():
        hf = hf_model_from_weights(cfg, weights)
        expected = [hf(ids).logits for ids in microbatches]
    (out0, calls0), (out1, calls1) = run_ranks(pipeline_rank, 2, cfg, weights, microbatches,
                                               timeout=90)
    assert out0 == [], "only the last stage returns outputs"
    assert len(out1) == 3
    for i, (got, want) in enumerate(zip(out1, expected)):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4,
                                   msg=f"micro-batch {i}: pipelined logits != HF logits")
    # torch's send may call isend inside (and recv irecv): count messages either way
    for rank, calls, verbs in ((0, calls0, {"send", "isend"}), (1, calls1, {"recv", "irecv"})):
        assert set(calls) <= verbs and max(calls.values()) == 3, (
            f"rank {rank}: expected 3 messages ({' or '.join(sorted(verbs))}) and no other "
            f"collective, saw {calls}")
