"""The pixel world model's reward head: r_t from the latent state (h_t, z_t)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldmodel.models.layout import check_layers, elu_mlp, split_input


class RewardHead(nn.Module):
    """(h (..., D), z (..., S)) -> predicted reward (...).

    Its layers (state-dict keys ``net.0``, ``net.2``, ``net.4``, those of every saved run), each Linear also by name:

        net   Linear([h, z]: D + S -> H), ELU, Linear(H -> H), ELU, Linear(H -> 1)
              (input_layer, hidden_layer, output_layer)

    ``latent_planning``'s rollouts compute exactly this from those weights; ``check_layout`` refuses other layers
    when the head is built.
    """

    def __init__(self, *, belief_size: int, state_size: int, hidden_size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(belief_size + state_size, hidden_size),
            nn.ELU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ELU(),
            nn.Linear(hidden_size, 1),
        )
        self.belief_size, self.state_size, self.hidden_size = belief_size, state_size, hidden_size
        self.check_layout()

    def check_layout(self) -> None:
        """Refuse (``LayoutError``, saying what differs) layers other than the class docstring's."""
        D, S, H = self.belief_size, self.state_size, self.hidden_size
        check_layers("RewardHead.net", self.net, elu_mlp(D + S, H, H, 1), "models/latent_planning.py")

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([h, z], dim=-1)).squeeze(-1)

    # ---- the layers by name: the only place that knows their positions ----------------------------------

    @property
    def input_layer(self) -> nn.Linear:
        """Linear([h, z] -> H), followed by ELU."""
        return self.net[0]

    @property
    def hidden_layer(self) -> nn.Linear:
        """Linear(H -> H), followed by ELU."""
        return self.net[2]

    @property
    def output_layer(self) -> nn.Linear:
        """Linear(H -> 1): the reward."""
        return self.net[4]

    def input_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """The input layer split by its input [h, z]: W_h (H, D), W_z (H, S), bias (H,)."""
        return split_input(self.input_layer, self.belief_size)
