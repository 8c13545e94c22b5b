"""Process-group set-up for torchrun (DDP): rank/world from the environment, NCCL on GPU, gloo on CPU.

One process per device. Only rank 0 writes files, logs and TensorBoard; collectives here are no-ops in a
single-process run, so the trainer calls them unconditionally.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
from typing import Any, Mapping

import torch
import torch.distributed as dist
from torch import nn

from uattr.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DistributedContext:
    """Where this process sits: its rank, the world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable data)."""
        if not self.enabled:
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` in rank order, on every rank (picklable data)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def sum_over_ranks(self, values: Mapping[str, float | torch.Tensor]) -> dict[str, float]:
        """Each value summed over the ranks, on every rank (each calls it with the same keys): one all-reduce of
        a small vector."""
        keys = sorted(values)
        stacked = torch.tensor([float(values[key]) for key in keys], dtype=torch.float64, device=self.device)
        if self.enabled:
            dist.all_reduce(stacked)
        return dict(zip(keys, stacked.tolist()))

    def gather_to_main(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0, None elsewhere (picklable data; only rank 0 holds them
        all, as a dev set's embeddings need)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, gathered, dst=0)
        return gathered


def resolve_device(spec: str, local_rank: int = 0, option: str = "trainer.device") -> torch.device:
    """``auto`` → the local GPU when there is one, else the CPU; ``cuda`` → ``cuda:<local rank>``. A device this
    machine lacks, or no device at all, is a ConfigError naming ``option``."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{option} '{spec}': CUDA is not available on this machine")
    try:
        device = torch.device("cuda", local_rank) if spec == "cuda" else torch.device(spec)
    except RuntimeError as error:
        raise ConfigError(f"{option} '{spec}': {error}") from error
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        shown = spec if spec != "cuda" else f"cuda (local rank {local_rank}: cuda:{local_rank})"
        raise ConfigError(f"{option} '{shown}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def init_distributed(device_spec: str, timeout_minutes: float = 30.0) -> DistributedContext:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), or make a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size > 1 and device_spec.startswith("cuda:"):  # every rank would take that one GPU
        raise ConfigError(
            f"trainer.device '{device_spec}': in a DDP run each process takes its local rank's GPU; give 'cuda' "
            f"(or 'auto'), and choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    device = resolve_device(device_spec, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend,
            timeout=datetime.timedelta(minutes=timeout_minutes),
            device_id=device if device.type == "cuda" else None,
        )
        logger.info("rank %d of %d on %s (%s)", rank, world_size, device, backend)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: DistributedContext, find_unused_parameters: bool) -> nn.Module:
    """DistributedDataParallel around ``model`` in a multi-process run; the model itself otherwise."""
    if not context.enabled:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def unused_parameters(model: nn.Module, loss: torch.Tensor) -> list[str]:
    """Names of trainable parameters that get no gradient from ``loss`` (DDP then needs find_unused)."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in trainable], allow_unused=True)
    return [name for (name, _), grad in zip(trainable, grads) if grad is None]
