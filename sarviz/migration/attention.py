"""Self-attention features of a diffusers U-Net, cached by a real attention processor.

Attention distillation (Zhou et al., CVPR 2025; seed 003 stage 2) needs, for chosen
self-attention layers, the query/key/value and the attention output of a forward pass.
:class:`CachingSelfAttnProcessor` computes attention exactly as diffusers'
``AttnProcessor2_0`` and, while the shared :class:`AttentionCache` is recording, keeps
``q, k, v, out`` (each ``(batch, heads, tokens, head_dim)``). It is installed with
``unet.set_attn_processor`` on the layers chosen **by module name**; every other layer
keeps diffusers' own processor, so the U-Net's output is unchanged.

Layer sets (:func:`choose_layers`):

* ``ad-default`` — the public AD code's SD 1.5 choice, self-attention layers 10–15 in
  execution order = every ``attn1`` of the last two decoder blocks (``up_blocks.2``,
  ``up_blocks.3`` in SD 1.5). Written by name as "the last two up blocks that have
  attention", so it also means something on other U-Nets (tiny test U-Nets, SDXL).
* ``shallow-deep`` — seed 003 distils "from both the deeper and shallower stages": ours is
  the highest-resolution encoder block with attention and the highest-resolution decoder
  block (shallow: texture, speckle, sidelobes) plus the mid block and the lowest-resolution
  decoder block with attention (deep: layout). The paper names no layers; this is our choice.
* a comma-separated list of module names or ``fnmatch`` globs (``up_blocks.3.*``); a name
  that matches no self-attention layer is an error naming the available ones.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sarviz.errors import GenerationError

LAYER_PRESETS = ("ad-default", "shallow-deep")


@dataclass
class AttentionCache:
    """q/k/v/out per cached layer of the last recorded forward pass, in execution order."""

    recording: bool = False
    layers: list[str] = field(default_factory=list)
    q: list[torch.Tensor] = field(default_factory=list)
    k: list[torch.Tensor] = field(default_factory=list)
    v: list[torch.Tensor] = field(default_factory=list)
    out: list[torch.Tensor] = field(default_factory=list)

    def clear(self) -> None:
        for items in (self.layers, self.q, self.k, self.v, self.out):
            items.clear()

    def add(self, name: str, q, k, v, out) -> None:
        self.layers.append(name)
        self.q.append(q)
        self.k.append(k)
        self.v.append(v)
        self.out.append(out)

    def snapshot(self) -> AttentionFeatures:
        return AttentionFeatures(list(self.layers), list(self.q), list(self.k), list(self.v), list(self.out))


@dataclass
class AttentionFeatures:
    layers: list[str]
    q: list[torch.Tensor]
    k: list[torch.Tensor]
    v: list[torch.Tensor]
    out: list[torch.Tensor]


class CachingSelfAttnProcessor:
    """diffusers' ``AttnProcessor2_0`` computation that also caches q, k, v and the attention output."""

    def __init__(self, name: str, cache: AttentionCache) -> None:
        self.name = name
        self.cache = cache

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs
    ):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        key = attn.to_k(context)
        value = attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        if self.cache.recording:
            self.cache.add(self.name, query, key, value, out)
        hidden_states = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def self_attention_layers(unet) -> list[str]:
    """Module names of the U-Net's self-attention layers (diffusers ``Attention`` that is not cross-attention)."""
    from diffusers.models.attention_processor import Attention

    return [
        name for name, module in unet.named_modules() if isinstance(module, Attention) and not module.is_cross_attention
    ]


def _block_index(name: str, kind: str) -> int | None:
    parts = name.split(".")
    if parts[0] == kind and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    return None


def choose_layers(unet, spec: str | list[str]) -> list[str]:
    """Self-attention layer names for a preset (:data:`LAYER_PRESETS`) or names/globs (see module doc)."""
    available = self_attention_layers(unet)
    if not available:
        raise GenerationError(
            "the feature extractor has no self-attention layers; attention distillation needs "
            "a U-Net with transformer blocks (an SD 1.5/SDXL-style base)"
        )
    up = sorted({i for n in available if (i := _block_index(n, "up_blocks")) is not None})
    down = sorted({i for n in available if (i := _block_index(n, "down_blocks")) is not None})
    in_block = lambda kind, idx: [n for n in available if _block_index(n, kind) == idx]
    if spec == "ad-default":
        chosen = [n for i in up[-2:] for n in in_block("up_blocks", i)]
    elif spec == "shallow-deep":
        chosen = []
        if down:
            chosen += in_block("down_blocks", down[0])  # highest-resolution encoder block with attention
        chosen += [n for n in available if n.startswith("mid_block.")]
        if up:
            chosen += in_block("up_blocks", up[0])  # lowest-resolution decoder block with attention (deep)
            if up[-1] != up[0]:
                chosen += in_block("up_blocks", up[-1])  # highest-resolution decoder block (shallow)
    else:
        patterns = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
        chosen = []
        for pattern in patterns:
            hits = [n for n in available if n == pattern or fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise GenerationError(
                    f"layer {pattern!r} matches no self-attention layer; available: {', '.join(available)}"
                )
            chosen += [n for n in hits if n not in chosen]
    if not chosen:
        raise GenerationError(f"layer set {spec!r} selects no self-attention layer of this U-Net")
    order = {n: i for i, n in enumerate(available)}
    return sorted(dict.fromkeys(chosen), key=order.__getitem__)


def install_cache(unet, layers: list[str]) -> AttentionCache:
    """Install :class:`CachingSelfAttnProcessor` on ``layers`` (diffusers' ``AttnProcessor2_0`` elsewhere)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    cache = AttentionCache()
    wanted = set(layers)
    processors = {}
    for key in unet.attn_processors:
        module_name = key[: -len(".processor")]
        processors[key] = CachingSelfAttnProcessor(module_name, cache) if module_name in wanted else AttnProcessor2_0()
    unet.set_attn_processor(processors)
    return cache
