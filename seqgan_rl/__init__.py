"""seqgan-rl: SeqGAN (sequence GANs trained with policy gradient) as a reinforcement-learning environment.

Importing the package registers ``seqgan_rl/TokenGeneration-v0`` with Gymnasium (``gymnasium.make`` and
``gymnasium.make_vec``); the entry points are imported lazily.
"""

import gymnasium

__version__ = "0.1.0"

ENV_ID = "seqgan_rl/TokenGeneration-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="seqgan_rl.envs.token_generation:make_token_generation_env",
        vector_entry_point="seqgan_rl.envs.vector:TokenGenerationVectorEnv",
        disable_env_checker=False,
    )
