"""Hidden graders of lesson 02.

Classes of learner mistake (tests/mutations/__init__.py BUG_CLASSES) and the graders that see
them; each has a planted bug in tests/mutations/lesson02.py.

| class         | grader (test_...)                                  | example bug                             |
|---------------|----------------------------------------------------|-----------------------------------------|
| logic         | filtered_probs_equal_brute_force, draws_follow_... | temperature applied after the softmax   |
| extreme       | extreme_logits_and_temperatures                    | exp without subtracting the maximum     |
| rows-differ   | rows_of_a_batch_are_filtered_independently, eos_.. | min-p against the whole batch's maximum |
| boundary      | cut_offs_hit_exactly, nucleus_is_the_smallest_...  | top-p with <= instead of <              |
| special-value | eos_stops_each_row_..., edge_settings              | `if eos_id:` ignores eos id 0           |
| multi-token   | cached_greedy_equals_uncached                      | first token from the prompt's position 0|
| dtype-device  | probabilities_are_float32_for_half_precision_...   | softmax in the logits' bf16/fp16        |
| unvaried-arg  | the_sampler_chooses_every_token                    | sampler ignored, argmax in the loop     |
| contract      | logits_are_left_unchanged, randomness_comes_...    | logits divided in place                 |
| cost          | each_decode_step_feeds_exactly_one_token           | whole sequence re-fed; prompt run for 0 |
"""
