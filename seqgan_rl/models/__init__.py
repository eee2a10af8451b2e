"""Pure torch models: the oracle LSTM, the generator policy and the CNN discriminator."""

from seqgan_rl.models.discriminator import Discriminator, Ranker
from seqgan_rl.models.generator import Generator, State
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.models.sampling import sample_categorical

__all__ = ["Discriminator", "Generator", "OracleLSTM", "Ranker", "State", "sample_categorical"]
