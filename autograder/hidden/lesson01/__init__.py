"""Hidden graders of lesson 01.

Classes of learner mistake (tests/mutations/__init__.py BUG_CLASSES) and the graders that see
them; each has a planted bug in tests/mutations/lesson01.py.

| class         | grader (test_...)                                   | example bug                          |
|---------------|-----------------------------------------------------|--------------------------------------|
| logic         | param_count_equals_numel, forward_equals_reference  | K/V sized with n_heads               |
| extreme       | rms_norm_per_row_zero_rows_and_float16              | float16 squared without upcast       |
| rows-differ   | rms_norm_per_row_zero_rows_and_float16              | mean square over the whole tensor    |
| boundary      | decoder_layer_equals_reference, flops_..._counter   | mask lets a token see the next one   |
| special-value | rms_norm_per_row_zero_rows_and_float16              | eps after the rsqrt: zero row -> NaN |
| multi-token   | decoder_layer_equals_reference                      | attention not causal                 |
| dtype-device  | rope_dtypes_..., forward_makes_new_tensors_on_...   | apply_rope returns float32 for bf16  |
| unvaried-arg  | decoder_layer_equals_reference (three rope bases)   | rope base hard-coded to 10000        |
| contract      | counts_are_ints_..., submission_does_not_import_... | a count returned as a float          |
| cost          | apply_rope_is_vectorised                            | a Python loop over channel pairs     |
"""
