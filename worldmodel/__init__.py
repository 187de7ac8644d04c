"""worldmodel: model-based RL from MuJoCo states and pixels."""

__version__ = "0.1.0"
