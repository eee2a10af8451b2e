"""Gymnasium environments: token generation, SeqGAN's MC-rollout Q reward, and the batched vector env."""

from seqgan_rl.envs.rollout import (
    ConstantReward,
    EMARolloutPolicy,
    MaliGANReward,
    PrefixStateCache,
    Reward,
    SeqGANReward,
    mc_q_values,
    prefix_q_values,
    rollout_completions,
    sample_prefix_completions,
)
from seqgan_rl.envs.token_generation import (
    REWARD_MODES,
    MCRolloutReward,
    TokenGenerationEnv,
    check_reward_gamma,
    make_token_generation_env,
)
from seqgan_rl.envs.vector import TokenGenerationVectorEnv

ENV_ID = "seqgan_rl/TokenGeneration-v0"

__all__ = [
    "ENV_ID", "REWARD_MODES", "ConstantReward", "EMARolloutPolicy", "MCRolloutReward", "MaliGANReward",
    "PrefixStateCache", "Reward",
    "SeqGANReward", "TokenGenerationEnv", "TokenGenerationVectorEnv", "check_reward_gamma", "make_token_generation_env",
    "mc_q_values",
    "prefix_q_values", "rollout_completions", "sample_prefix_completions",
]  # fmt: skip
