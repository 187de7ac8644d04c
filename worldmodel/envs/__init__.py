"""Environments: state vector envs (HalfCheetah-v5, the homework cheetah) and 64x64 pixel envs."""
