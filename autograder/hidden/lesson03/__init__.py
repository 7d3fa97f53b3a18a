"""Hidden graders for lesson 03 (prefill vs decode).

Classes of learner mistake (tests/mutations/__init__.py BUG_CLASSES) and the graders that see
them; each has a planted bug in tests/mutations/lesson03.py, except "extreme" (see its
NOT_APPLICABLE: the lesson's own code has no exp, softmax or scale).

| class         | grader (test_...)                                    | example bug                          |
|---------------|------------------------------------------------------|--------------------------------------|
| logic         | prefill_then_decode_equals_full_forward, worked_...  | decode rotated from position 0       |
| rows-differ   | a_chunk_of_new_tokens_..., decode_leaves_the_...     | a batch's tokens fed as one sequence |
| boundary      | phase_time_model_against_a_step_loop                 | a step reads before its own token    |
| special-value | a_chunk_of_new_tokens_and_the_cache_contents         | squeeze() drops a batch of one       |
| multi-token   | a_chunk_of_new_tokens_and_the_cache_contents         | new K/V placed before the cached     |
| dtype-device  | new_tensors_are_made_on_the_inputs_device            | positions built on the CPU           |
| unvaried-arg  | a_chunk_of_new_tokens_and_the_cache_contents         | final norm eps hard-coded            |
| contract      | decode_leaves_the_given_cache_alone                  | decode writes into the given cache   |
| cost          | prefill_projects_only_the_last_position              | logits for every prompt position     |
"""
