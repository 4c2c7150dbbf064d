"""Message passing on graphs in the PyTorch Geometric convention.

Graphs are ``edge_index [2, E]`` with messages flowing from ``edge_index[0]`` (source) to
``edge_index[1]`` (target), nodes ``[N, ...]`` and ``batch [N]`` naming each node's graph.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_edge_index(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Validate ``edge_index``: an integer tensor ``[2, E]`` with entries in ``[0, num_nodes)``."""
    if not isinstance(edge_index, Tensor) or edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"edge_index must be an int64 tensor [2, E], got {getattr(edge_index, 'dtype', edge_index)}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
    if edge_index.numel() and not torch.compiler.is_compiling():
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= num_nodes:
            raise ValueError(f"edge_index entries must lie in [0, {num_nodes}), got [{low}, {high}]")
    return edge_index


def scatter_sum(values: Tensor, index: Tensor, num_targets: int) -> Tensor:
    """Sum ``values [E, ...]`` into ``[num_targets, ...]`` by ``index [E]``."""
    out = values.new_zeros(num_targets, *values.shape[1:])
    return out.index_add_(0, index, values)


def scatter_mean(values: Tensor, index: Tensor, num_targets: int) -> Tensor:
    """Mean of ``values [E, ...]`` per target ``[num_targets, ...]``; targets with no entry get 0."""
    total = scatter_sum(values, index, num_targets)
    count = torch.bincount(index, minlength=num_targets).clamp_min(1).to(values.dtype)
    return total / count.view(-1, *([1] * (values.dim() - 1)))


def fully_connected_edges(n_nodes: int, batch_size: int = 1, *, device: torch.device | str | None = None) -> Tensor:
    """``edge_index [2, B·n·(n-1)]`` of ``batch_size`` disjoint complete graphs without self-loops.

    Messages flow from ``edge_index[0]`` to ``edge_index[1]``; within graph b the edges are (i, j) for
    i ≠ j, source-major, on nodes offset by ``b · n_nodes`` (the layout of ``torch.cat`` of node tensors).
    """
    idx = torch.arange(n_nodes, device=device)
    src, dst = idx.repeat_interleave(n_nodes), idx.repeat(n_nodes)
    keep = src != dst
    edges = torch.stack([src[keep], dst[keep]])  # [2, n(n-1)]
    offsets = torch.arange(batch_size, device=device).repeat_interleave(edges.shape[1]) * n_nodes
    return edges.repeat(1, batch_size) + offsets


def knn_edges(senders: Tensor, receivers: Tensor, k: int, *, exclude_self: bool = False) -> Tensor:
    """Edges from each receiver's ``k`` nearest senders, for batches of point clouds of fixed size.

    ``senders [B, n, 3]``, ``receivers [B, m, 3]`` -> ``edge_index [2, B·m·k]`` whose entries index the rows of
    ``senders.reshape(B·n, 3)`` (sources) and ``receivers.reshape(B·m, 3)`` (targets). ``exclude_self`` (for
    ``senders is receivers``) skips each point's own index. Ties are broken by ``torch.topk``.
    """
    if senders.dim() != 3 or receivers.dim() != 3 or senders.shape[0] != receivers.shape[0]:
        raise ValueError(f"senders and receivers must be [B, n, 3] and [B, m, 3], got {list(senders.shape)} and "
                         f"{list(receivers.shape)}")
    b, n, m = senders.shape[0], senders.shape[1], receivers.shape[1]
    available = n - 1 if exclude_self else n
    if not 1 <= k <= available:
        raise ValueError(f"k must lie in [1, {available}], got {k}")
    dist = torch.cdist(receivers.detach(), senders.detach())  # [B, m, n]
    if exclude_self:
        dist = dist.masked_fill(torch.eye(m, n, dtype=torch.bool, device=dist.device), float("inf"))
    nearest = dist.topk(k, dim=-1, largest=False).indices  # [B, m, k]
    src = nearest + n * torch.arange(b, device=nearest.device)[:, None, None]
    dst = torch.arange(b * m, device=nearest.device).view(b, m, 1).expand(b, m, k)
    return torch.stack([src.reshape(-1), dst.reshape(-1)])
