"""Where results go: metrics.jsonl, the console, wandb (offline by default) and logdir/media/."""

from worldmodel.logging.logger import Logger

__all__ = ["Logger"]
