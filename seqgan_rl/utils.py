"""Device selection, seeding and atomic file writes: the small helpers every module shares."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import random
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve a device spec once, at program start.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), or anything ``torch.device`` accepts.

    Raises:
        ValueError: if the spec names a device that does not exist here.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available: use --device cpu or auto")
    return resolved


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    Training and evaluation allocate and free tensors of 10-30 MB at every step; with glibc's defaults they
    are returned to the OS and faulted back in, page by page, each time (thousands of page faults per MLE
    step), which costs 10-20% of an MLE epoch on CPU. Blocks up to 32 MB then come from the heap and freed
    memory stays mapped (the process keeps its peak footprint). Results are unchanged: only where memory
    comes from. The scripts call it; a no-op returning False where glibc's ``mallopt`` is not available.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # <malloc.h>
    return all(
        mallopt(option, value) == 1
        for option, value in ((m_mmap_threshold, 32 << 20), (m_trim_threshold, 1 << 30), (m_top_pad, 64 << 20))
    )


def machine_fingerprint() -> dict[str, str]:
    """What float results depend on besides the code and the config: torch's build, the CPU's vector unit, its
    model and a hash of its flags. Runs reproduce bit for bit on machines with the same fingerprint."""
    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = hashlib.sha256(value.strip().encode()).hexdigest()[:16]
            if model and flags:
                break
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": model,
        "flags": flags,
    }


def machine_type() -> str:
    """``machine_fingerprint`` in one line, as result tables record it: ``AMD EPYC (flags 0469c2d3, AVX2), 2 CPUs,
    torch 2.13.0+cpu``."""
    fp = machine_fingerprint()
    cpu = f"{fp['cpu'] or 'unknown CPU'} (flags {fp['flags'][:8]}, {fp['capability']})"
    return f"{cpu}, {os.cpu_count()} CPUs, torch {fp['torch']}"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global generators (library code uses explicit generators)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def global_rng_state() -> dict[str, Any]:
    """torch's global RNG states (CPU and CUDA): what dropout draws from. Saved in checkpoints so that a
    resumed run draws the same dropout masks as a straight one."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_rng(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device``: the form in which library code takes randomness."""
    rng = torch.Generator(device=device)
    rng.manual_seed(int(seed))
    return rng


def derive_seed(seed: int, *labels: int | str) -> int:
    """A child seed for an independent stream (data, evaluation, rollouts...) derived from ``seed``."""
    seq = np.random.SeedSequence([int(seed) % 2**63, *(_label_int(x) for x in labels)])
    return int(seq.generate_state(1, dtype=np.uint64)[0] % 2**63)


def _label_int(label: int | str) -> int:
    if isinstance(label, int):
        return label % 2**63
    return int.from_bytes(label.encode()[:8].ljust(8, b"\0"), "little")


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write text atomically (temporary file + rename)."""
    atomic_write_bytes(text.encode(), path)


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write bytes atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


TEMPERATURE_RANGE = (1e-3, 1e3)
"""Sampling temperatures accepted everywhere. Logits are divided by the temperature: below 1e-3 a logit
of the paper generator's size (|logit| < 10) can exceed float32's exp range by far and sampling turns
into an argmax that rounding decides; above 1e3 every distribution is uniform to within 1%."""


HF_EXTRA = 'pip install -e ".[hf]"'


def require_transformers() -> Any:
    """The ``transformers`` module, or a ``ValueError`` naming the extra to install (a CLI's exit 2)."""
    try:
        import transformers
    except ImportError as exc:
        raise ValueError(f"transformer generators need Hugging Face transformers: {HF_EXTRA}") from exc
    return transformers


def check_temperature(temperature: float, name: str = "temperature") -> float:
    """Return ``temperature`` as a float if it is a number in ``TEMPERATURE_RANGE``; else raise ``ValueError``.

    The one check every sampler, config and CLI uses."""
    lo, hi = TEMPERATURE_RANGE
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not lo <= temperature <= hi:
        raise ValueError(f"{name} must be > 0, in [{lo:g}, {hi:g}], got {temperature!r}")
    return float(temperature)


class NonFiniteError(ArithmeticError):
    """A NaN or infinite value where training needs finite ones (a loss, a gradient, a reward, a model's
    output, a metric, a checkpoint), or a model that has diverged: the run stops before anything non-finite
    is written, and the last good checkpoint stays as it was."""


DIVERGED_NLL = 100.0
"""Nats per token beyond which a model's NLL (the MLE loss, NLL-test, NLL-oracle) means it has diverged: a
uniform model over 5,000 tokens scores 8.5, the paper's oracle 5.75 (a learning rate of 1e9 gives 1e8)."""


def check_nll(name: str, value: Any) -> None:
    """``check_finite``, and ``NonFiniteError`` when the per-token NLL exceeds ``DIVERGED_NLL``."""
    check_finite(name, value)
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if v > DIVERGED_NLL:
        raise NonFiniteError(f"{name} is {v:.4g} nats per token (> {DIVERGED_NLL:g}): the model has diverged")


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module):
    """Put ``module`` in eval mode (no dropout) inside the block; its mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@contextlib.contextmanager
def located(where: str):
    """Prefix a ``NonFiniteError`` raised inside with where it happened (once: the innermost place wins)."""
    try:
        yield
    except NonFiniteError as exc:
        if getattr(exc, "where", None):
            raise
        err = NonFiniteError(f"{where}: {exc}")
        err.where = where
        raise err from None


def check_finite(name: str, value: Any) -> None:
    """Raise ``NonFiniteError`` naming ``name`` unless ``value`` (a number or a tensor) is finite everywhere."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = value[~torch.isfinite(value)].flatten()[:3].tolist()
            raise NonFiniteError(f"{name}: not finite ({len(bad)}+ values such as {bad})")
    elif isinstance(value, float) and not math.isfinite(value):
        raise NonFiniteError(f"{name}: {value}")


def assert_finite_state(state: Any, where: str, prefix: str = "") -> None:
    """``check_finite`` on every tensor and float of a (nested) state dict; the error names the entry."""
    if isinstance(state, dict):
        for key, value in state.items():
            assert_finite_state(value, where, f"{prefix}{key}.")
    elif isinstance(state, list | tuple):
        for i, value in enumerate(state):
            assert_finite_state(value, where, f"{prefix}{i}.")
    else:
        try:
            check_finite(prefix.rstrip(".") or "value", state)
        except NonFiniteError as exc:
            raise NonFiniteError(f"refusing to write {where}: {exc}") from None


def check_token_batch(tokens: torch.Tensor, vocab_size: int, seq_len: int | None = None, name: str = "tokens") -> None:
    """Raise ``ValueError`` unless ``tokens`` is a ``(B, T)`` int64 tensor of ids in ``[0, vocab_size)``
    (and ``T == seq_len`` when given)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        got = f"{tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"{name} must be a (B, T) int64 tensor, got {got}")
    if seq_len is not None and tokens.shape[1] != seq_len:
        raise ValueError(f"{name}: expected sequences of length {seq_len}, got {tokens.shape[1]}")
    if tokens.numel():
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{name}: token ids must be in [0, {vocab_size}), got range [{lo}, {hi}]")


def pad_after_eos(tokens: torch.Tensor, eos_token: int, pad_token: int) -> torch.Tensor:
    """``(B, T)`` with every position after a row's first ``eos_token`` set to ``pad_token`` (a new tensor)."""
    return tokens.masked_fill(~valid_mask(tokens, eos_token), pad_token)  # strictly after the first end token


def valid_mask(tokens: torch.Tensor, eos_token: int | None) -> torch.Tensor:
    """``(B, T)`` bool: True up to and including each row's first ``eos_token`` (all True without one)."""
    if eos_token is None:
        return torch.ones_like(tokens, dtype=torch.bool)
    is_eos = (tokens == eos_token).long()
    return (is_eos.cumsum(dim=1) - is_eos) == 0


NEUTRAL_WHEN_ABSENT: dict[str, Any] = {
    "num_layers": 1, "dropout": 0.0, "init": "normal", "real_data": "train", "d_kind": "pretrained",
    "d_warmup_rounds": 0,
}  # fmt: skip
"""Config fields added after run folders were written, with the value that runs as those folders did (a
one-layer generator without dropout, initialised as the reference code does)."""


def config_differences(saved: Any, requested: Any, prefix: str = "") -> list[str]:
    """Where a saved config (parsed ``config.json``) differs from a requested one, as ``"a.b: old -> new"``.

    A key missing from the saved config counts as equal when the requested value is ``None`` (an optional
    feature added to the config later and switched off) or its ``NEUTRAL_WHEN_ABSENT`` value, so run folders
    written by earlier versions of the package still resume."""
    if isinstance(saved, dict) and isinstance(requested, dict):
        out: list[str] = []
        for key in sorted(set(saved) | set(requested)):
            name = f"{prefix}{key}"
            if key not in saved:
                if requested[key] is not None and NEUTRAL_WHEN_ABSENT.get(key, ...) != requested[key]:
                    out.append(f"{name}: (absent) -> {requested[key]!r}")
            elif key not in requested:
                out.append(f"{name}: {saved[key]!r} -> (absent)")
            else:
                out += config_differences(saved[key], requested[key], f"{name}.")
        return out
    if isinstance(saved, list | tuple) and isinstance(requested, list | tuple) and len(saved) == len(requested):
        pairs = enumerate(zip(saved, requested, strict=True))
        return [d for i, (s, r) in pairs for d in config_differences(s, r, f"{prefix}{i}.")]
    same = saved == requested or (isinstance(saved, list | tuple) and list(saved) == list(requested))
    return [] if same else [f"{prefix.rstrip('.')}: {saved!r} -> {requested!r}"]


def check_saved_config(path: str | os.PathLike, requested: dict[str, Any], ignore: tuple[str, ...] = ()) -> None:
    """Raise ``ValueError`` naming the differing fields when ``path`` (a run's ``config.json``) exists and
    does not match ``requested`` (top-level keys in ``ignore`` aside); do nothing when it does not exist."""
    path = Path(path)
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({type(exc).__name__}: {exc})") from exc
    if isinstance(saved, dict):
        saved = {k: v for k, v in saved.items() if k not in ignore}
    diffs = config_differences(saved, {k: v for k, v in requested.items() if k not in ignore})
    if diffs:
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        raise ValueError(
            f"{path} differs from the requested config ({shown}): resume with the same options, "
            "or choose another output folder"
        )


T = TypeVar("T")
R = TypeVar("R")
_region = threading.Lock()  # one region at a time (another thread's calls meanwhile run their items in order)
_owner = threading.local()  # .workers: the pool's size on the thread that holds the region
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, workers, pool)


@contextlib.contextmanager
def worker_threads() -> Iterator[None]:
    """A region of CPU work in row chunks: torch runs on one thread, and ``parallel_map`` hands its items to as
    many Python threads as torch had (``torch.get_num_threads()``), each running its ops on one thread.

    Open it around a whole loop of ``parallel_map`` calls (a rollout's steps): between the calls, torch's own
    threads would otherwise spin after every op and compete with the workers for the cores. Nothing happens with
    one torch thread, inside a worker, or when another thread holds a region; re-entering is a no-op.
    """
    threads = torch.get_num_threads()
    if getattr(_owner, "workers", 0) or threads < 2 or not _region.acquire(blocking=False):
        yield
        return
    torch.set_num_threads(1)  # read per op, by torch and MKL: the ops of the region and of its workers run on one
    _owner.workers = threads
    try:
        yield
    finally:
        _owner.workers = 0
        torch.set_num_threads(threads)
        _region.release()


def parallel_map(fn: Callable[[T], R], items: Iterable[T], device: torch.device | None = None) -> list[R]:
    """``[fn(x) for x in items]``, the items computed side by side on the CPU (``worker_threads``; a region of its
    own when not inside one); in order when ``device`` (where ``fn`` computes) is not the CPU.

    For independent row chunks of a large computation (sampling, scoring) whose every op is small: torch's own
    threads split each op in two and meet at a barrier after it (~15 ops per 512-row sampling chunk), so a thread
    slowed by a busy host stalls both; here each chunk stays on one core, and the threads meet once per call.
    ``fn`` must not draw random numbers (draw them before, in order) and must write only its own rows: the results
    are then those of the serial loop, bit for bit (no op's result depends on the thread count:
    ``tests/test_parallel.py``, ``benchmarks/bench_parallel.py``). The caller's grad mode holds in the workers.
    """
    items = list(items)
    if device is not None and device.type != "cpu":
        return [fn(x) for x in items]
    with worker_threads():
        workers = getattr(_owner, "workers", 0)
        if workers < 2 or len(items) < 2:
            return [fn(x) for x in items]
        grad = torch.is_grad_enabled()

        def run(x: T) -> R:
            with torch.set_grad_enabled(grad):
                return fn(x)

        return list(_worker_pool(workers).map(run, items))


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` threads (a new one after a fork or for another count)."""
    global _pool
    if _pool is None or _pool[:2] != (os.getpid(), workers):
        if _pool is not None and _pool[0] == os.getpid():
            _pool[2].shutdown(wait=False)
        init = lambda: torch.set_num_threads(1)  # noqa: E731
        _pool = (os.getpid(), workers, ThreadPoolExecutor(workers, "seqgan-rl-chunks", init))
    return _pool[2]


HOME_PID = "_seqgan_rl_home_pid"
"""The attribute in which a model records the process that built it (see ``mark_home_process``)."""


def mark_home_process(model: Any) -> None:
    """Record this process as ``model``'s home: an env refuses a copy of it in a worker process, whose
    rewards would not follow the training loop's updates (``seqgan_rl.envs.token_generation``)."""
    setattr(model, HOME_PID, os.getpid())
