"""Data-parallel training on ``torch.distributed``, launched by ``torchrun``.

    torchrun --nproc_per_node 2 scripts/train_agent.py --out runs/dp2      # 2 processes of this machine

Every rank holds the same models (same initial weights, identical updates), works on its share of each batch
(sampling, MC rollouts, D's negatives, the evaluation's samples) with its own random streams, and the ranks
sum their gradients and statistics with all-reduces. Rank 0 alone touches the run folder. See
``docs/distributed.md``.

In a plain process (no process group, or a group of one) every function here is the identity or a no-op, so
single-process results do not change: the distributed code paths run only under ``torchrun`` with
``WORLD_SIZE > 1`` (``init_from_env``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from seqgan_rl.utils import derive_seed

TIMEOUT = timedelta(minutes=30)
"""How long a rank waits for the others at a collective (the paper's D schedule on CPU is minutes)."""


def enabled() -> bool:
    """True in a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if enabled() else 0


def world_size() -> int:
    return dist.get_world_size() if enabled() else 1


def is_main() -> bool:
    """True on rank 0 (and in a plain process): the rank that writes files, logs and shows progress."""
    return rank() == 0


def launched() -> bool:
    """True when this process was started by ``torchrun`` (or by hand with its variables) with ``WORLD_SIZE > 1``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> torch.device:
    """Join torchrun's process group when launched by it; returns the device this rank uses.

    The backend follows the device: NCCL for CUDA (one GPU per rank: ``cuda:LOCAL_RANK``), gloo for the CPU.
    Outside torchrun (``WORLD_SIZE`` unset or 1) nothing happens and ``device`` is returned.

    Raises:
        ValueError: when the ranks of this machine outnumber its GPUs.
    """
    if not launched():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} GPU(s): start at most that "
                "many processes per node (torchrun --nproc_per_node), or use --device cpu"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return device


def shutdown(wait: bool = False) -> None:
    """Leave the process group (the end of a torchrun job). ``wait``: first wait for the other ranks to get
    here (a job that ended well: no rank leaves while another still talks to it); not after an error, where
    the others may never arrive (torchrun stops them when this process exits)."""
    if dist.is_available() and dist.is_initialized():
        if wait and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def quiet_other_ranks() -> None:
    """On ranks other than 0: standard output to ``os.devnull`` and logging at WARNING, so that a job prints
    one report (a script's choice, at its start; errors still reach stderr)."""
    if enabled() and not is_main():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
        logging.getLogger().setLevel(logging.WARNING)


def run_main(body: Callable[[], int]) -> int:
    """A script's ``main``: ``body()``'s exit code, leaving the process group afterwards (under torchrun; after
    a success, once every rank has arrived: see ``shutdown``)."""
    code = 1
    try:
        code = body()
    finally:
        shutdown(wait=code == 0)
    return code


def exit_process(code: int) -> None:
    """End a script: ``sys.exit(code)`` in a plain process. Under torchrun (after ``shutdown``): flush, run the
    ``atexit`` handlers, then ``os._exit(code)``, skipping the interpreter's teardown, where gloo's threads
    sometimes abort a finished rank ("terminate called without an active exception", seen in about 1 of 15
    runs here) and torchrun then reports the whole job failed."""
    if not launched():
        sys.exit(code)
    logging.shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ---------------------------------------------------------------------------------------------- shares
def shard_sizes(n: int, k: int | None = None) -> list[int]:
    """How ``n`` items split over ``k`` ranks (default: the world): sizes differ by at most one, the first
    ``n % k`` ranks one more."""
    k = world_size() if k is None else k
    return [n // k + (r < n % k) for r in range(k)]


def shard(n: int, r: int | None = None, k: int | None = None) -> slice:
    """Rank ``r``'s contiguous slice of ``n`` items (default: this rank's; the whole range in a plain process)."""
    sizes = shard_sizes(n, k)
    r = rank() if r is None else r
    start = sum(sizes[:r])
    return slice(start, start + sizes[r])


def local_share(n: int) -> int:
    """How many of ``n`` items (sequences of a batch, samples of an evaluation) this rank takes."""
    return shard_sizes(n)[rank()]


def rank_seed(seed: int) -> int:
    """The seed of this rank's copy of a random stream: ``seed`` itself in a plain process, a child of
    ``(seed, rank)`` under torchrun (the ranks draw different sequences, reproducibly)."""
    return derive_seed(seed, "rank", rank()) if enabled() else seed


# ---------------------------------------------------------------------------------------------- collectives
def sum_gradients(parameters: Iterable[torch.nn.Parameter], extras: torch.Tensor | None = None) -> torch.Tensor | None:
    """Sum the gradients of ``parameters`` over the ranks, in place, in one all-reduce. A rank without a
    gradient for a parameter (no data in this step) adds zeros; a parameter no rank has a gradient for keeps
    none (as in one process, where the optimizer then skips it). ``extras`` (a 1-d tensor of statistics) rides
    along and is returned summed. A no-op in a plain process (``extras`` returned as it is)."""
    if not enabled():
        return extras
    params = [p for p in parameters if p.requires_grad]
    device, dtype = params[0].device, params[0].dtype
    flat = [torch.zeros_like(p).flatten() if p.grad is None else p.grad.flatten() for p in params]
    flat.append(torch.tensor([p.grad is not None for p in params], device=device, dtype=dtype))
    if extras is not None:
        flat.append(extras.to(device, dtype).flatten())
    buf = torch.cat(flat)
    dist.all_reduce(buf)
    offset, total = 0, sum(p.numel() for p in params)
    has_grad = buf[total : total + len(params)] > 0
    for p, has in zip(params, has_grad.tolist(), strict=True):
        n = p.numel()
        p.grad = buf[offset : offset + n].view_as(p).clone() if has else None
        offset += n
    return None if extras is None else buf[total + len(params) :].to(extras.dtype)


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over the ranks (a copy; the tensor itself in a plain process)."""
    if not enabled():
        return values
    out = values.detach().clone()
    dist.all_reduce(out)
    return out


def mean(total: torch.Tensor, count: torch.Tensor) -> float:
    """``sum(total) / sum(count)`` over the ranks (``count`` at least 1): a mean over the whole batch."""
    if not enabled():
        return float(total / count.clamp(min=1))
    both = all_sum(torch.stack([total.detach().double(), count.detach().double()]))
    return float(both[0] / both[1].clamp(min=1))


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's rows concatenated in rank order (the ranks may hold different row counts); the tensor
    itself in a plain process."""
    return gather_with_slice(tensor)[0]


def gather_with_slice(tensor: torch.Tensor) -> tuple[torch.Tensor, slice]:
    """``gather_rows(tensor)`` and the slice of it that holds this rank's rows."""
    if not enabled():
        return tensor, slice(0, tensor.shape[0])
    counts = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(world_size())]
    dist.all_gather(counts, torch.tensor([tensor.shape[0]], device=tensor.device))
    sizes = [int(c) for c in counts]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    start = sum(sizes[: rank()])
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)]), slice(start, start + tensor.shape[0])


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; tensors arrive where rank 0 held them: send CPU tensors)."""
    if not enabled():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def per_rank(obj: Any) -> Any:
    """What a checkpoint saves of a per-rank object (a random stream's state): the object in a plain process,
    every rank's (a list in rank order) under torchrun."""
    if not enabled():
        return obj
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return {"per_rank": out}


def own(saved: Any, what: str = "a random stream") -> Any:
    """This rank's object from what ``per_rank`` saved.

    Raises:
        ValueError: a checkpoint written by another number of processes.
    """
    ranks = saved.get("per_rank") if isinstance(saved, dict) else None
    if ranks is None and not enabled():
        return saved
    have = 1 if ranks is None else len(ranks)
    if have != world_size():
        raise ValueError(
            f"the checkpoint holds {what} of {have} process(es), this run has {world_size()}: resume with the "
            "world size it was started with"
        )
    return ranks[rank()]


def on_main(fn: Callable[[], Any], *, share: bool = True) -> Any:
    """Run ``fn`` on rank 0 only and give every rank its outcome: the result (``share``; else ``True``) or
    the exception, raised on every rank. Opening and reading the run folder go through here, so an error
    (a folder in use, a config mismatch) stops every rank with rank 0's message instead of a hang."""
    if not enabled():
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as exc:  # sent to the other ranks, raised again here below
            error = exc
    box = broadcast_object((result if share else True, error) if is_main() else None)
    if error is not None:
        raise error
    if box[1] is not None:
        raise box[1]
    return result if is_main() else box[0]
