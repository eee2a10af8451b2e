"""Pure torch models: the oracle LSTM, the generator policies (the LSTM and, with the ``hf`` extra, any Hugging Face
causal LM) and the discriminators (the CNN, an LSTM classifier that can start from G's weights and, with the ``hf``
extra, any Hugging Face sequence classifier)."""

from __future__ import annotations

from typing import Any

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig, TransformerConfig, TransformerDiscriminatorConfig
from seqgan_rl.models.discriminator import Discriminator, Ranker
from seqgan_rl.models.generator import Generator, State
from seqgan_rl.models.interface import GeneratorBase
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.models.recurrent_discriminator import RecurrentDiscriminator
from seqgan_rl.models.sampling import sample_categorical
from seqgan_rl.models.transformer import KVState, TransformerGenerator
from seqgan_rl.models.transformer_discriminator import TransformerDiscriminator


def build_generator(config: GeneratorConfig | TransformerConfig) -> GeneratorBase:
    """The generator a config describes: the LSTM ``Generator`` or a ``TransformerGenerator`` (the ``hf`` extra)."""
    if isinstance(config, TransformerConfig):
        return TransformerGenerator.from_config(config)
    return Generator(config)


def build_discriminator(
    config: DiscriminatorConfig | TransformerDiscriminatorConfig,
) -> Discriminator | TransformerDiscriminator:
    """The discriminator a config describes: the CNN or a ``TransformerDiscriminator`` (the ``hf`` extra)."""
    if isinstance(config, TransformerDiscriminatorConfig):
        return TransformerDiscriminator.from_config(config)
    return Discriminator(config)


def generator_config_from_dict(saved: dict[str, Any]) -> GeneratorConfig | TransformerConfig:
    """A generator config from its ``dataclasses.asdict`` (a checkpoint's or a run's ``config.json``)."""
    if saved.get("kind") == "transformer":
        return TransformerConfig(**saved)
    return GeneratorConfig(**saved)


__all__ = [
    "Discriminator",
    "Generator",
    "GeneratorBase",
    "KVState",
    "OracleLSTM",
    "Ranker",
    "RecurrentDiscriminator",
    "State",
    "TransformerDiscriminator",
    "TransformerGenerator",
    "build_discriminator",
    "build_generator",
    "generator_config_from_dict",
    "sample_categorical",
]
