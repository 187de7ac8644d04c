"""Learned models: the dynamics ensemble (state path) and the RSSM world model (pixel path).

Why import torch._dynamo eagerly, here: the first Adam step imports it, and with it triton's bundled LLVM. If a
MuJoCo EGL context (Mesa's llvmpipe, with its own LLVM) already exists by then, the process segfaults (both agents
render before they train: seed episodes, dm_control frames). Every model module imports this package first, so
importing it here, before any environment renders, avoids that for both agents.
"""

import torch._dynamo  # noqa: F401
