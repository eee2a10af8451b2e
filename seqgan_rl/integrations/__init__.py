"""Bridges to other libraries' trainers: ``seqgan_rl.integrations.trl`` (TRL's GRPO and RLOO, the ``trl`` extra)."""
