"""Running under ``torchrun``: the process group, this rank's place in it, and the few collectives chexradi uses.

``torchrun --nproc_per_node N ...`` starts N processes and gives each the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``. :func:`init_from_env` reads them once per process and
initialises the default :mod:`torch.distributed` process group (``"nccl"`` for
CUDA devices, ``"gloo"`` on CPU); :func:`current` returns the :class:`Dist` of
the group that is already initialised. Without that environment (a plain
``python`` or ``chexradi`` run) both return a single-process :class:`Dist`
(rank 0 of 1) whose methods are cheap identities, so code written against
:class:`Dist` runs unchanged in one process::

    from chexradi.train import distributed

    d = distributed.init_from_env()          # no-op without torchrun
    try:
        mine = d.shard(len(items))           # the items this rank handles
        results = [work(items[i]) for i in mine]
        gathered = d.all_gather_object(results)
        if d.is_main:
            write([r for part in gathered for r in part])   # in item order
        d.barrier()
    finally:
        d.close()

:func:`chexradi.train.fit` uses the group it finds (it never initialises one):
see its docstring for what is distributed there.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Dist", "init_from_env", "current", "BACKENDS"]

#: The backends :func:`init_from_env` accepts.
BACKENDS = ("nccl", "gloo")

_ENV_HINT = ("launch with torchrun (e.g. `torchrun --nproc_per_node 2 -m chexradi ...`), which sets RANK, "
             "WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, or unset them all for a single process")


def _dist_module() -> Any:
    import torch.distributed as dist

    return dist


@dataclass
class Dist:
    """One process's place in a (possibly single-process) torch.distributed run.

    With ``world_size == 1`` no method communicates: they return their input
    (wrapped in a one-element list for the gathers).

    Attributes
    ----------
    rank, world_size, local_rank:
        This process's global rank, the number of processes, its rank on its node.
    backend:
        ``"nccl"``, ``"gloo"``, or None for a single process (no process group).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None
    _owns_group: bool = field(default=False, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that writes files and logs."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when there is more than one process."""
        return self.world_size > 1

    def device(self, requested: Union[None, str, torch.device] = None) -> torch.device:
        """The device this rank uses when ``requested`` is asked for.

        ``None`` means CUDA when available, else CPU; ``"cuda"`` (or None on a
        machine with CUDA) without an index becomes ``cuda:local_rank`` in
        a multi-process run, so that each process on a node gets its own GPU; an
        explicit ``"cuda:N"`` or ``"cpu"`` is kept.

        Raises
        ------
        ValueError
            Not a device, CUDA asked for but not available, ``local_rank`` past the
            GPU count, or a CPU device with the nccl backend.
        """
        from ..nn.device import resolve_device

        dev = resolve_device(requested)
        if self.is_distributed and dev.type == "cuda" and dev.index is None:
            if self.local_rank >= torch.cuda.device_count():
                raise ValueError(f"LOCAL_RANK={self.local_rank} but this node has {torch.cuda.device_count()} "
                                 f"CUDA device(s); start at most that many processes per node "
                                 f"(torchrun --nproc_per_node)")
            dev = torch.device("cuda", self.local_rank)
        if self.backend == "nccl" and dev.type != "cuda":
            raise ValueError(f"the process group uses nccl, which needs CUDA tensors, but the device is "
                             f"{str(dev)!r}; pass device='cuda' or initialise with backend='gloo'")
        return dev

    # -- collectives -------------------------------------------------------------------------------------

    def _comm_device(self) -> torch.device:
        """Where tensors for collectives live: the current GPU for nccl, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if not self.is_distributed:
            return
        dist = _dist_module()
        if self.backend == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` for one process."""
        if not self.is_distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        _dist_module().all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` (picklable) on every rank; the other ranks' ``obj`` is ignored."""
        if not self.is_distributed:
            return obj
        box = [obj if self.rank == src else None]
        _dist_module().broadcast_object_list(box, src=src)
        return box[0]

    def all_reduce_sum(self, x: Union[float, int, np.ndarray, Tensor]) -> Any:
        """The sum over ranks of ``x``, on every rank, as the same kind of value.

        A Python number gives a float, a NumPy array a float64 array of its shape,
        a tensor a tensor (reduced in float64 on the communication device, returned
        with ``x``'s dtype and device).
        """
        if not self.is_distributed:
            return float(x) if isinstance(x, (int, float, np.number)) else x
        dist = _dist_module()
        if isinstance(x, Tensor):
            t = x.detach().to(self._comm_device(), torch.float64, copy=True)
            dist.all_reduce(t)
            return t.to(device=x.device, dtype=x.dtype)
        arr = np.array(x, dtype=np.float64, copy=True)
        t = torch.from_numpy(arr.reshape(-1)).to(self._comm_device())
        dist.all_reduce(t)
        res = t.cpu().numpy().reshape(arr.shape)
        return res if isinstance(x, np.ndarray) else float(res)

    def shard(self, n: int) -> range:
        """The indices ``0 .. n-1`` this rank handles: one contiguous block.

        Blocks are as equal as possible (the first ``n % world_size`` ranks get one
        more item); concatenated in rank order they are ``range(n)``, so results
        gathered with :meth:`all_gather_object` and flattened are in item order.
        A rank gets an empty range when ``n < world_size``.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0 (the number of items), got {n!r}")
        n = int(n)
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (1 if self.rank < extra else 0))

    def close(self) -> None:
        """Destroy the process group if :func:`init_from_env` created it (otherwise do nothing)."""
        if self._owns_group:
            dist = _dist_module()
            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_group = False


def _env_int(name: str, minimum: int) -> Optional[int]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer; {_ENV_HINT}") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={value} must be >= {minimum}; {_ENV_HINT}")
    return value


def current() -> Dist:
    """The :class:`Dist` of the default process group when one is initialised, else a single-process one."""
    try:
        dist = _dist_module()
    except ImportError:  # pragma: no cover - torch without distributed
        return Dist()
    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    rank, world = dist.get_rank(), dist.get_world_size()
    local = _env_int("LOCAL_RANK", 0)
    return Dist(rank=rank, world_size=world, local_rank=rank if local is None else local,
                backend=str(dist.get_backend()))


def init_from_env(device: Union[None, str, torch.device] = None, *, backend: Optional[str] = None,
                  timeout: Optional[float] = None) -> Dist:
    """Join the run ``torchrun`` started, or return a single-process :class:`Dist`.

    Parameters
    ----------
    device:
        The device the caller will use (None: CUDA when available, else CPU); it
        picks the default backend and, on CUDA, makes ``cuda:LOCAL_RANK`` this
        process's current device.
    backend:
        ``"nccl"`` or ``"gloo"``; default nccl for a CUDA device, gloo otherwise.
    timeout:
        Seconds a collective may wait for the other ranks (torch's default when None).

    With ``WORLD_SIZE`` unset (or 1) nothing is initialised. When the default
    process group already exists it is reused (and :meth:`Dist.close` leaves it).

    Raises
    ------
    ValueError
        An inconsistent environment (``RANK`` without ``WORLD_SIZE``, a rank outside
        ``0 .. WORLD_SIZE-1``, no ``MASTER_ADDR``/``MASTER_PORT``), an unknown
        backend, nccl without CUDA or on a CPU device.
    RuntimeError
        This torch has no torch.distributed.
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None (nccl on CUDA, gloo on CPU), got {backend!r}")
    dist = _dist_module()
    if dist.is_available() and dist.is_initialized():
        return current()
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    if world is None:
        present = [n for n, v in (("RANK", rank), ("LOCAL_RANK", local)) if v is not None]
        if present:
            raise ValueError(f"{' and '.join(present)} {'is' if len(present) == 1 else 'are'} set but WORLD_SIZE "
                             f"is not; {_ENV_HINT}")
        return Dist()
    if world == 1:
        if rank not in (None, 0):
            raise ValueError(f"RANK={rank} but WORLD_SIZE=1; the only rank of one process is 0; {_ENV_HINT}")
        return Dist()
    if rank is None:
        raise ValueError(f"WORLD_SIZE={world} is set but RANK is not; {_ENV_HINT}")
    if rank >= world:
        raise ValueError(f"RANK={rank} is not below WORLD_SIZE={world}; {_ENV_HINT}")
    missing = [n for n in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(n)]
    if missing:
        raise ValueError(f"WORLD_SIZE={world} but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                         f"not set (the address the ranks meet at); {_ENV_HINT}")
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; install a torch with distributed support "
                           "or run in a single process")
    local_rank = rank if local is None else local
    from ..nn.device import resolve_device

    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("backend='nccl' needs CUDA GPUs, but torch.cuda.is_available() is False; use "
                         "backend='gloo' (or None) on CPU")
    dev = resolve_device(device if device is not None or backend != "nccl" else "cuda")
    chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if chosen == "nccl" and dev.type != "cuda":
        raise ValueError(f"backend='nccl' needs a CUDA device, but device={str(dev)!r}; pass device='cuda' or "
                         f"use backend='gloo'")
    if chosen == "nccl" and not dist.is_nccl_available():
        raise ValueError("backend='nccl' is not available in this torch build; use backend='gloo'")
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else local_rank
        if index >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} CUDA "
                             f"device(s); start at most that many processes per node (torchrun --nproc_per_node)")
        torch.cuda.set_device(index)
    kwargs: dict[str, Any] = {}
    if timeout is not None:
        kwargs["timeout"] = timedelta(seconds=float(timeout))
    dist.init_process_group(backend=chosen, init_method="env://", rank=rank, world_size=world, **kwargs)
    return Dist(rank=rank, world_size=world, local_rank=local_rank, backend=chosen, _owns_group=True)


# ----------------------------------------------------------------------------- helpers for fit


def _broadcast_buffers(modules: list[Any], d: Dist, src: int = 0) -> None:
    """Give every rank rank ``src``'s buffers (batch-norm statistics) of ``modules`` (nn.Modules; others skipped)."""
    if not d.is_distributed:
        return
    dist = _dist_module()
    for m in modules:
        if not isinstance(m, nn.Module):
            continue
        for buf in m.buffers():
            if d.backend == "nccl" and buf.device.type != "cuda":
                tmp = buf.to(d._comm_device())
                dist.broadcast(tmp, src=src)
                buf.copy_(tmp)
            else:
                dist.broadcast(buf, src=src)


def _average_gradients(params: list[Tensor], d: Dist) -> None:
    """Replace the gradients of ``params`` by their mean over ranks (a missing gradient counts as zeros).

    One all-reduce per gradient dtype, of the flattened gradients, summed and then divided by the world size.
    """
    if not d.is_distributed or not params:
        return
    dist = _dist_module()
    dev = d._comm_device()
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype if p.grad is not None else p.dtype, []).append(p)
    for dtype, group in by_dtype.items():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p, dtype=dtype)).detach()
                          .reshape(-1).to(dev, dtype) for p in group])
        dist.all_reduce(flat)
        flat /= d.world_size
        offset = 0
        for p in group:
            n = p.numel()
            g = flat[offset:offset + n].view(p.shape).to(p.device)
            offset += n
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)


class _LossModule(nn.Module):
    """The model and the objective as one module whose forward is ``objective.loss(model, batch)``.

    What DDP wraps: the objective keeps calling the plain model (its attributes and
    methods other than forward), while DDP sees every parameter of the model and of
    an objective that is an :class:`~torch.nn.Module`.
    """

    def __init__(self, model: nn.Module, objective: Any) -> None:
        super().__init__()
        self.model = model
        self.objective = objective  # registered as a submodule when it is one

    def forward(self, batch: Any) -> Any:
        return self.objective.loss(self.model, batch)


class _DataParallel:
    """DDP around model + objective for :func:`~chexradi.train.fit`, with the objective's other parameters.

    Whether DDP needs ``find_unused_parameters`` (a walk of the autograd graph per
    step) is decided on the first step: it runs without DDP's gradient sync
    (``no_sync``), the gradients are averaged here instead (the same mean), and a
    parameter without a gradient on every rank is unused; only then is DDP rebuilt
    with ``find_unused_parameters=True``. Parameters the objective returns from
    ``parameters()`` without being an ``nn.Module`` are averaged here on every step.
    """

    def __init__(self, model: nn.Module, objective: Any, device: torch.device, d: Dist,
                 extra: list[Tensor]) -> None:
        self.module = _LossModule(model, objective)
        self.device, self.dist = device, d
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        ids = {id(p) for p in self.params}
        self.extra = [p for p in extra if id(p) not in ids]
        self.find_unused: Optional[bool] = None  # decided by the first step
        self.ddp = self._wrap(False)

    def _wrap(self, find_unused: bool) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.module, device_ids=ids, output_device=ids[0] if ids else None,
                                       find_unused_parameters=find_unused)

    def loss(self, batch: Any) -> Any:
        """``(loss, logits)`` of this rank's part of the batch; its backward averages the gradients."""
        if self.find_unused is None:
            with self.ddp.no_sync():  # type: ignore[operator]
                return self.ddp(batch)
        return self.ddp(batch)

    def after_backward(self) -> None:
        """Average what DDP did not: the extra gradients, and on the first step all of them."""
        if self.find_unused is not None:
            _average_gradients(self.extra, self.dist)
            return
        params = self.params + self.extra
        missing = self.dist.all_reduce_sum(np.array([p.grad is None for p in params], dtype=np.float64))
        unused = missing == self.dist.world_size
        _average_gradients([p for p, u in zip(params, unused) if not u], self.dist)
        self.find_unused = bool(unused[:len(self.params)].any())

    def after_step(self) -> None:
        if self.find_unused and not getattr(self.ddp, "find_unused_parameters", False):
            del self.ddp
            self.ddp = self._wrap(True)
