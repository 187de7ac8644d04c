"""What both agents' ``load_agent`` start from (the run loop they share is ``worldmodel.runner``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from worldmodel.devices import resolve_device


class SavedPolicy(NamedTuple):
    """What a ``load_agent`` builds a policy from."""

    cfg: Any
    """The run's config (with the overrides given to ``load_agent``)."""
    sizes: dict[str, Any]
    """What rebuilds the model beside the config (action size, image shape, ...)."""
    weights: dict[str, torch.Tensor]
    """The model's state dict."""
    device: torch.device
    generator: torch.Generator
    """Seeded with the run's seed: the planner's and the policy's random numbers."""
    policy: dict[str, Any] | None
    """The state agent's policy network (``policy.kind`` other than none): its weights and updates; else None."""


def saved_policy(
    run: str | Path, policy_file: str | Path | None, kind: str, config_class: type, device: str,
    overrides: list[str] | tuple[str, ...] = (),
) -> SavedPolicy:
    """The ``policy.pt`` of the run folder ``run`` (or ``policy_file``, anywhere) of a ``kind`` agent, read
    without running anything, its config rebuilt as ``config_class``."""
    from worldmodel.checkpoint import load_policy
    from worldmodel.config import load_config

    saved = load_policy(policy_file or run, kind=kind)
    cfg = load_config(config_class, saved["config"], list(overrides))
    torch_device = resolve_device(device)
    generator = torch.Generator(device=torch_device).manual_seed(cfg.seed)
    return SavedPolicy(cfg, saved["sizes"], saved["weights"], torch_device, generator, saved.get("policy"))
