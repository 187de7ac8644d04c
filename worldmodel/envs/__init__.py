"""Environments: state vector envs (any gymnasium MuJoCo body, the homework cheetah, dm_control tasks from
their states; ``state.py``) and 64x64 pixel envs (``pixels.py``)."""
