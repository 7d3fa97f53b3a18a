"""What each linear layer of the course model sees: its inputs on real text, for calibration.

Post-training quantization (lesson 16: SmoothQuant, AWQ) needs, for each linear layer
``y = x @ w.T`` with ``w: [d_out, d_in]``, the activations ``x: [tokens, d_in]`` that reach it.
``linear_inputs`` runs HF transformers' Llama on the weights once
(``course.model.hf_model_from_weights``) and records them with forward hooks, so no learner has to
rewrite the forward pass to get them. ``next_token_loss`` measures a set of (possibly quantized)
weights on a token sequence, with the same independent model.

Invariant: recording changes nothing; the logits of the recorded forward are those of a plain
one, and ``linear_inputs(...)[name] @ weights[name].T`` is that layer's output in the forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course.config import LlamaConfig
from course.model import hf_model_from_weights

# The seven linear layers of one Llama block, in HF naming (weights are [d_out, d_in]).
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def linear_weight_names(cfg: LlamaConfig) -> list[str]:
    """The weight names of every linear layer of every block (7 x n_layers; no embedding or
    lm_head), e.g. ``'model.layers.0.self_attn.q_proj.weight'``."""
    return [f"model.layers.{i}.{n}.weight" for i in range(cfg.n_layers) for n in LINEARS]


@torch.no_grad()
def linear_inputs(weights: dict[str, torch.Tensor], cfg: LlamaConfig, input_ids: torch.Tensor,
                  names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The input of each named linear layer when the model reads ``input_ids``.

    Args:
        weights: the model's weights in HF naming (`course.model.load_weights()` for the real
            model, `course.model.random_weights(cfg)` for a tiny one); not modified.
        cfg: its config (`course.model.load_config()`).
        input_ids: ``[batch, tokens]`` int64 (or ``[tokens]``, read as a batch of one).
        names: weight names to record; default every linear layer (`linear_weight_names`).
    Returns:
        ``{name: x}`` with ``x: [batch * tokens, d_in]`` float in the weights' dtype: what that
        layer multiplied by ``weights[name].T`` in one forward pass of these weights.

    Example (calibration inputs for lesson 16, from the unquantized model)::

        weights, cfg = load_weights(), load_config()
        acts = linear_inputs(weights, cfg, calibration_ids[None])
        acts["model.layers.0.mlp.gate_proj.weight"].shape   # (tokens, 576)
    """
    names = linear_weight_names(cfg) if names is None else list(names)
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"no weight named {missing[0]!r} ({len(missing)} of {len(names)} names "
                         "missing); names look like 'model.layers.0.mlp.gate_proj.weight'")
    ids = input_ids[None] if input_ids.dim() == 1 else input_ids
    if ids.dim() != 2 or ids.dtype.is_floating_point:
        raise ValueError(f"input_ids must be int [batch, tokens], got {ids.dtype} "
                         f"{tuple(input_ids.shape)}")
    model = hf_model_from_weights(cfg, weights)
    inputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    modules = dict(model.named_modules())
    hooks = []
    for name in names:
        def record(module, args, name=name):
            x = args[0].detach()
            inputs[name].append(x.reshape(-1, x.shape[-1]).clone())
        hooks.append(modules[name.removesuffix(".weight")].register_forward_pre_hook(record))
    try:
        model(input_ids=ids)
    finally:
        for hook in hooks:
            hook.remove()
    unseen = [n for n, xs in inputs.items() if not xs]
    if unseen:
        raise RuntimeError(f"the forward pass never multiplied by {unseen[0]!r}")
    return {n: torch.cat(xs) for n, xs in inputs.items()}


@torch.no_grad()
def next_token_loss(weights: dict[str, torch.Tensor], cfg: LlamaConfig,
                    input_ids: torch.Tensor) -> float:
    """Mean cross-entropy (nats per token) of predicting ``input_ids[t + 1]`` from tokens
    ``0..t``, over one sequence ``[tokens]`` or a batch ``[batch, tokens]`` read from position 0."""
    ids = input_ids[None] if input_ids.dim() == 1 else input_ids
    if ids.dim() != 2 or ids.shape[1] < 2:
        raise ValueError(f"need at least 2 tokens per sequence, got shape {tuple(input_ids.shape)}")
    logits = hf_model_from_weights(cfg, weights)(input_ids=ids).logits
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                           ids[:, 1:].reshape(-1)).item()
