"""Hidden graders for lesson 14 (speculative decoding).

Classes of learner mistakes they catch (planted in tests/mutations/lesson14.py):

============== ===============================================================================
logic          acceptance with probability p_target[x]; the correction drawn from p_target
               instead of the residual; the bonus from row gamma - 1; alpha^gamma in the
               formula; gamma + 1 draft runs in the cost; gamma = 0 never considered; drafts
               verified against a distribution they were not sampled from
extreme        a softmax without the maximum on logits 300 apart; alpha near 1 snapped to
               gamma + 1
rows-differ    the residual pooled over every draft position; the acceptance rate averaged
               over rows
boundary       the residual sampled before a rejection (all zeros when p_target == p_draft);
               ties in optimal_gamma going to the longer draft; the last step one token long
special-value  alpha = 1 through the closed form (0 / 0); eos id 0 ignored
multi-token    target rows shifted by one against the drafts; accepted drafts dropped
dtype-device   not planted (see NOT_APPLICABLE in tests/mutations/lesson14.py)
unvaried-arg   the generator ignored (global RNG); max_gamma ignored; temperature ignored for
               the target
contract       the next token returned as a tensor; tokens after eos kept within a step
cost           an extra target call for the next token (the target must run once per step)
============== ===============================================================================
"""
