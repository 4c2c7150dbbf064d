"""PCA frames, canonicalization and frame averaging (Puny et al., "Frame Averaging for Invariant and
Equivariant Network Design", ICLR 2022).

For a point cloud ``pos [N, 3]`` (PyG style: ``batch [N]`` names each point's cloud, ``weights [N]`` weighs it,
a boolean mask is a 0/1 weight) the frame of each cloud is its weighted centroid ``c`` (E(3)/SE(3); the origin
for O(3)/SO(3)) and the eigenvectors ``V`` of its weighted covariance ``Σ w (x-c)(x-c)ᵀ / Σ w``. The eigenvectors
are fixed up to signs, so the frame is the set ``{V S}`` over sign matrices ``S``: 8 for O(3), the 4 with
``det(V S) = +1`` for SO(3). Averaging a backbone ``φ`` over the frame,

    invariant:   ⟨φ⟩(x) = 1/|F| Σ_F φ(Fᵀ (x - c))
    equivariant: ⟨φ⟩(x) = 1/|F| Σ_F F · φ(Fᵀ (x - c))     (F·: the output's declared type, e.g. ``"pos"``),

is exactly invariant/equivariant for *any* backbone, and permutation-equivariant when ``φ`` is.
``canonicalize`` uses one frame instead, its signs fixed by the third moment along each axis (cheaper,
equally exact when the third moments are non-zero).

Degenerate clouds. When two covariance eigenvalues coincide (symmetric shapes, collinear points, a single
point, all weights zero) the eigenvectors are not unique and the frame is arbitrary inside that eigenspace:
the result stays finite (never NaN) but is no longer exactly invariant. Near degeneracy the invariance error
grows like ``ε / gap`` (ε the machine precision, gap the relative eigenvalue gap), as the tests measure.
:attr:`Frames.degenerate` flags clouds whose relative gap is below ``tol`` (default ``√ε``), and, for
canonical frames, whose third moment (skewness) along a used axis is below ``tol``. The frame is computed
from a detached covariance (eigh's backward is unstable at repeated eigenvalues): gradients flow through
the centroid and the points, not through the axes. They are then the gradients of ``φ`` at the canonical
pose rotated back, which is what makes them equivariant too (forces from an invariant energy).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from liequiv.nn.graph import scatter_sum
from liequiv.symmetry.elements import GroupElement
from liequiv.symmetry.fields import FieldType, as_field_type
from liequiv.symmetry.groups import Group, as_group
from liequiv.validation import check_tensor

_SIGNS = torch.tensor(list(itertools.product((1.0, -1.0), repeat=3)))  # [8, 3]; the 4 proper ones have product +1


def check_point_cloud(pos: Tensor, batch: Tensor | None = None, weights: Tensor | None = None,
                      num_graphs: int | None = None) -> tuple[Tensor, Tensor, Tensor, int]:
    """Validate a PyG-style cloud; return ``(pos [N, 3], batch [N] int64, weights [N] in pos.dtype, num_graphs)``."""
    pos = check_tensor(pos, "pos", (3,))
    if pos.dim() != 2:
        raise ValueError(f"pos must have shape [N, 3] (use batch [N] for several clouds), got {list(pos.shape)}")
    n = pos.shape[0]
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
    elif not isinstance(batch, Tensor) or batch.dtype not in (torch.int64, torch.int32) or batch.shape != (n,):
        raise TypeError(f"batch must be an integer tensor [N] = [{n}], got {getattr(batch, 'shape', batch)}")
    batch = batch.long()
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if n else 1
    if n and not torch.compiler.is_compiling() and (int(batch.min()) < 0 or int(batch.max()) >= num_graphs):
        raise ValueError(f"batch entries must lie in [0, {num_graphs}), got [{int(batch.min())}, {int(batch.max())}]")
    if weights is None:
        weights = pos.new_ones(n)
    elif not isinstance(weights, Tensor) or weights.shape != (n,):
        raise ValueError(f"weights must be a tensor [N] = [{n}] (or a boolean mask), got "
                         f"{list(getattr(weights, 'shape', []))}")
    weights = weights.to(pos.dtype)
    if not torch.compiler.is_compiling() and bool(((weights < 0) | ~torch.isfinite(weights)).any()):
        raise ValueError("weights must be finite and non-negative")
    return pos, batch, weights, num_graphs


def third_moment_signs(coords: Tensor, weights: Tensor, index: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
    """The deterministic sign rule: per graph and axis, ``s = sign Σ w c³`` (+1 at 0). ``coords [N, k]``.

    Returns ``(signs [B, k], skewness [B, k])``, skewness = ``Σ w c³ / (Σ w) / (Σ w c² / Σ w)^{3/2}``, which
    says how well defined the sign is (0: ambiguous).
    """
    total = scatter_sum(weights, index, num_graphs).clamp_min(torch.finfo(coords.dtype).tiny)[:, None]
    second = scatter_sum(weights[:, None] * coords**2, index, num_graphs) / total
    third = scatter_sum(weights[:, None] * coords**3, index, num_graphs) / total
    skew = third / second.clamp_min(torch.finfo(coords.dtype).tiny) ** 1.5
    return torch.where(third >= 0, 1.0, -1.0).to(coords.dtype), skew


@dataclass(frozen=True)
class Frames:
    """Frames of ``B`` clouds: ``rotations [B, K, 3, 3]`` (columns are the axes, K = 8, 4 or 1),
    ``centers [B, 3]``, covariance ``eigenvalues [B, 3]`` (ascending), ``relative_gap [B]`` (the smallest gap
    between eigenvalues over the largest) and ``degenerate [B]`` (bool)."""

    rotations: Tensor
    centers: Tensor
    eigenvalues: Tensor
    relative_gap: Tensor
    degenerate: Tensor

    @property
    def size(self) -> int:
        """K, the number of frame elements per cloud."""
        return self.rotations.shape[1]

    def canonicalizer(self, k: int, index: Tensor | None = None) -> GroupElement:
        """The element ``x ↦ F_kᵀ (x - c)`` that maps clouds to their ``k``-th canonical pose: one per entry of
        ``index`` (``batch`` for node fields, ``arange(B)`` for graph fields), or unbatched for one cloud."""
        rot, center = self.rotations[:, k], self.centers
        if index is None:
            if rot.shape[0] != 1:
                raise ValueError(f"index is needed for {rot.shape[0]} clouds")
            rot, center = rot[0], center[0]
        else:
            rot, center = rot[index], center[index]
        rot_t = rot.mT
        return GroupElement(rot_t, -(rot_t @ center[..., None])[..., 0])


def _as_sequence(types: Any) -> list[Any]:
    return [types] if isinstance(types, (str, FieldType)) or hasattr(types, "D_from_matrix") else list(types)


def _frame_group(group: Group | str) -> Group:
    group = as_group(group)
    if group.rotations not in ("SO(3)", "O(3)"):
        raise ValueError(f"group must be O(3), SO(3), E(3) or SE(3) (times S_n), got {group}")
    return group


def pca_frames(pos: Tensor, group: Group | str = "E(3)", *, batch: Tensor | None = None,
               weights: Tensor | None = None, num_graphs: int | None = None, canonical: bool = False,
               tol: float | None = None) -> Frames:
    """The PCA frames of clouds ``pos [N, 3]`` (see the module docstring); ``canonical=True``: one frame each,
    its signs fixed by :func:`third_moment_signs` (for SO(3) the smallest axis is the cross product of the others)."""
    group = _frame_group(group)
    pos, batch, weights, num_graphs = check_point_cloud(pos, batch, weights, num_graphs)
    eps = torch.finfo(pos.dtype).eps
    tol = eps**0.5 if tol is None else tol
    tiny = torch.finfo(pos.dtype).tiny
    total = scatter_sum(weights, batch, num_graphs).clamp_min(tiny)
    centers = scatter_sum(weights[:, None] * pos, batch, num_graphs) / total[:, None]
    if not group.translations:
        centers = torch.zeros_like(centers)
    rel = (pos - centers[batch]).detach()
    outer = weights[:, None, None] * rel[:, :, None] * rel[:, None, :]
    cov = scatter_sum(outer, batch, num_graphs) / total[:, None, None]
    eigenvalues, axes = torch.linalg.eigh(cov)
    scale = eigenvalues[:, 2].abs().clamp_min(tiny)
    relative_gap = torch.diff(eigenvalues, dim=-1).min(-1).values / scale
    degenerate = relative_gap < tol
    # make the axes right-handed, so that the proper sign patterns give the SO(3) frame
    axes = torch.cat([axes[..., :1] * torch.linalg.det(axes)[:, None, None], axes[..., 1:]], dim=-1)
    if canonical:
        coords = torch.einsum("nij,ni->nj", axes[batch], rel)
        signs, skew = third_moment_signs(coords, weights, batch, num_graphs)
        if group.rotations == "SO(3)":
            used = skew[:, 1:]
            signs = torch.cat([signs[:, 1:2] * signs[:, 2:], signs[:, 1:]], dim=-1)  # det +1: s0 = s1 s2
        else:
            used = skew
        degenerate = degenerate | (used.abs() < tol).any(-1)
        rotations = (axes * signs[:, None, :])[:, None]
    else:
        patterns = _SIGNS.to(pos.dtype).to(pos.device)
        if group.rotations == "SO(3)":
            patterns = patterns[patterns.prod(-1) > 0]
        rotations = axes[:, None] * patterns[None, :, None, :]
    return Frames(rotations, centers, eigenvalues, relative_gap, degenerate)


def canonicalize(pos: Tensor, group: Group | str = "E(3)", *, batch: Tensor | None = None,
                 weights: Tensor | None = None) -> tuple[Tensor, Frames]:
    """Canonical coordinates ``Fᵀ (x - c)`` ``[N, 3]`` of clouds ``pos [N, 3]`` in their canonical frame, and the
    frames (check ``frames.degenerate``: there the canonical pose is not unique)."""
    frames = pca_frames(pos, group, batch=batch, weights=weights, canonical=True)
    index = None if batch is None else batch
    return as_field_type("pos").transform(pos, frames.canonicalizer(0, index)), frames


class FrameAveraging(nn.Module):
    """Make ``backbone`` exactly invariant or equivariant by averaging it over the PCA frame of its input cloud.

    ``forward(pos [N, 3], *features, batch=None, weights=None)`` calls ``backbone(pos', *features')`` once per
    frame element, where ``'`` is the canonical pose and features transform by ``in_types`` (one type for pos and
    each feature; default ``"pos"`` then invariant scalars). ``output="invariant"`` averages the outputs;
    ``output="equivariant"`` maps each output back by its frame element as ``out_type`` (default ``"pos"``) says,
    per node (outputs ``[N, ...]``) or per cloud (``[B, ...]``). ``mode="canonicalize"`` uses one frame (1 call
    instead of 8 or 4). Permutation-equivariant backbones stay so.

    Example::

        >>> model = FrameAveraging(nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 3)),
        ...                        group="E(3)", output="equivariant", out_type="pos")
        >>> model(torch.randn(10, 3)).shape
        torch.Size([10, 3])
    """

    def __init__(self, backbone: nn.Module, group: Group | str = "E(3)",
                 output: Literal["invariant", "equivariant"] = "invariant", *,
                 in_types: Sequence[FieldType | str | Any] | None = None, out_type: FieldType | str | Any = "pos",
                 mode: Literal["average", "canonicalize"] = "average", tol: float | None = None) -> None:
        super().__init__()
        if not callable(backbone):
            raise TypeError(f"backbone must be callable, got {type(backbone).__name__}")
        if output not in ("invariant", "equivariant"):
            raise ValueError(f"output must be 'invariant' or 'equivariant', got {output!r}")
        if mode not in ("average", "canonicalize"):
            raise ValueError(f"mode must be 'average' or 'canonicalize', got {mode!r}")
        self.backbone = backbone
        self.group = _frame_group(group)
        self.output = output
        self.mode = mode
        self.tol = tol
        self.in_types = None if in_types is None else [as_field_type(t) for t in _as_sequence(in_types)]
        self.out_type = as_field_type(out_type)

    def forward(self, pos: Tensor, *features: Any, batch: Tensor | None = None,
                weights: Tensor | None = None) -> Tensor:
        frames = pca_frames(pos, self.group, batch=batch, weights=weights, canonical=self.mode == "canonicalize",
                            tol=self.tol)
        inputs = (pos, *features)
        types = self.in_types or [FieldType("pos")] + [FieldType("scalar")] * len(features)
        if len(types) != len(inputs):
            raise ValueError(f"in_types declares {len(types)} types but forward got {len(inputs)} inputs")
        num_graphs = frames.centers.shape[0]
        outputs = []
        for k in range(frames.size):
            g = frames.canonicalizer(k, batch)
            out = self.backbone(*(t.transform(x, g) for x, t in zip(inputs, types)))
            if self.output == "equivariant":
                out = self.out_type.transform(out, self._output_element(frames, k, batch, out, pos.shape[0],
                                                                        num_graphs))
            outputs.append(out)
        return torch.stack(outputs).mean(0)

    @staticmethod
    def _output_element(frames: Frames, k: int, batch: Tensor | None, out: Tensor, num_nodes: int,
                        num_graphs: int) -> GroupElement:
        if batch is None:
            return frames.canonicalizer(k).inverse()
        if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] not in (num_nodes, num_graphs):
            raise ValueError(f"an equivariant output must lead with the nodes ({num_nodes}) or the clouds "
                             f"({num_graphs}), got {list(getattr(out, 'shape', []))}")
        index = batch if out.shape[0] == num_nodes else torch.arange(num_graphs, device=batch.device)
        return frames.canonicalizer(k, index).inverse()
