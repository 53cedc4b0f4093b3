"""The engine of the 2048 family: ``rules`` (pure, batched moves, legal masks and spawns on
any board a ``games.Game`` describes, and the compiled per-board kernels other modules
build on), ``env`` (``VecEnv`` and the Gymnasium env) and the search over them."""
