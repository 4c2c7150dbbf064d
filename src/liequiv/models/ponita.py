"""PONITA: SE(3)-equivariant networks by weight sharing in position-orientation space (Bekkers et al., ICLR 2024).

Features live on position-orientation space R³ × S², sampled on a fixed grid of ``num_ori`` orientations
``o`` (a Fibonacci sphere). For a message from node j to node i, with ``Δ = p_j − p_i``, the kernels depend
only on the invariants of the pair ``(p_i, o), (p_j, o')``:

    spatial:  a_ij(o) = [o·Δ,  |Δ − (o·Δ) o|]        ([E, O, 2], same orientation at both ends)
    sphere:   b(o, o') = o·o'                         ([O, O], fixed: computed once per forward)

and a layer is a separable, depthwise group convolution, first over space then over the sphere,

    y_i(o') = 1/O Σ_o k_S²(o·o') Σ_j k_R³(a_ij(o)) ⊙ x_j(o)  + bias,

(:class:`~liequiv.nn.SeparableSphereConv`) inside a ConvNeXt block ``x + γ ⊙ MLP(LayerNorm(conv(x)))``. The
kernels are MLPs on polynomial features of the invariants. Velocities enter as scalar fields ``o·v`` on the
sphere (with ``|v|`` and the node features), and the output vector is ``1/O Σ_o f(o) o``, added to the positions.

Everything but the sphere integrals is exact: translations and permutations are exact symmetries, rotations
hold up to the quadrature error of the grid (it shrinks as ``num_ori`` grows; measure it with
:func:`~liequiv.symmetry.check_equivariance`).
``PONITAR3`` is the point-cloud variant on R³ alone (:class:`~liequiv.nn.PointConv`), exactly E(3)-equivariant.
"""

from __future__ import annotations

from itertools import product

import torch
from torch import Tensor, nn

from liequiv.models.inputs import check_dynamics_inputs
from liequiv.nn.graph import check_edge_index, scatter_mean
from liequiv.nn.mlp import MLP
from liequiv.nn.point_conv import PointConv
from liequiv.nn.position_orientation_conv import SeparableSphereConv, position_orientation_invariants, safe_norm
from liequiv.o3.s2grid import fibonacci_sphere


class PolynomialFeatures(nn.Module):
    """All monomials of the inputs of total degree at most ``degree``: ``[..., num_inputs] -> [..., num_monomials]``."""

    def __init__(self, num_inputs: int, degree: int) -> None:
        super().__init__()
        if num_inputs < 1 or degree < 1:
            raise ValueError(f"need num_inputs >= 1 and degree >= 1, got {num_inputs}, {degree}")
        exponents = [e for e in product(range(degree + 1), repeat=num_inputs) if sum(e) <= degree]
        self.register_buffer("exponents", torch.tensor(exponents), persistent=False)  # [M, num_inputs]
        self.register_buffer("axes", torch.arange(num_inputs).expand(len(exponents), -1), persistent=False)
        self.degree = degree

    @property
    def num_monomials(self) -> int:
        return self.exponents.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        powers = [torch.ones_like(x), x]
        for _ in range(self.degree - 1):
            powers.append(powers[-1] * x)
        table = torch.stack(powers, -1)  # [..., num_inputs, degree + 1]
        return table[..., self.axes, self.exponents].prod(-1)


class KernelBasis(nn.Module):
    """Learned basis functions of invariant attributes: polynomial features, then a GELU MLP, ``[..., k] -> [..., B]``.

    Shared by every layer; each layer maps the basis linearly to its own kernel.
    """

    def __init__(self, num_inputs: int, hidden: int, basis_dim: int, degree: int = 3) -> None:
        super().__init__()
        self.features = PolynomialFeatures(num_inputs, degree)
        self.mlp = MLP([self.features.num_monomials, hidden, basis_dim], activation=nn.GELU, last_activation=True)

    def forward(self, attributes: Tensor) -> Tensor:
        return self.mlp(self.features(attributes))


class ConvNextBlock(nn.Module):
    """``x + γ ⊙ MLP(LayerNorm(conv(x, ...)))`` with a ``widening_factor``× GELU MLP; γ is a learned layer scale.

    ``layer_scale=None`` drops γ. Features ``[..., hidden]``; the extra arguments go to ``conv``.
    """

    def __init__(self, hidden: int, conv: nn.Module, widening_factor: int = 4,
                 layer_scale: float | None = None) -> None:
        super().__init__()
        self.conv = conv
        self.norm = nn.LayerNorm(hidden)
        self.mlp = MLP([hidden, widening_factor * hidden, hidden], activation=nn.GELU)
        self.layer_scale = None if layer_scale is None else nn.Parameter(torch.full((hidden,), float(layer_scale)))

    def forward(self, x: Tensor, *conv_inputs: Tensor) -> Tensor:
        update = self.mlp(self.norm(self.conv(x, *conv_inputs)))
        return x + (update if self.layer_scale is None else self.layer_scale * update)


def _check_hyperparameters(node_dim: int, hidden: int, layers: int, basis_dim: int, degree: int,
                           widening_factor: int) -> None:
    values = {"node_dim": node_dim, "hidden": hidden, "layers": layers, "basis_dim": basis_dim, "degree": degree,
              "widening_factor": widening_factor}
    for name, value in values.items():
        if not isinstance(value, int) or value < (0 if name == "node_dim" else 1):
            raise ValueError(f"{name} must be an integer >= {0 if name == 'node_dim' else 1}, got {value!r}")


def _prepare_graph(edge_index: Tensor, num_nodes: int, self_loops: bool) -> Tensor:
    """Validate ``edge_index`` and append one self-loop per node when asked."""
    check_edge_index(edge_index, num_nodes)
    if not self_loops:
        return edge_index
    loops = torch.arange(num_nodes, device=edge_index.device, dtype=edge_index.dtype)
    return torch.cat([edge_index, loops.expand(2, -1)], 1)


class PONITA(nn.Module):
    """PONITA on position-orientation space R³ × S² for dynamics: positions, velocities, node scalars -> positions.

    Input on the sphere of each node: ``[node_features, |v|, o·v]`` for each grid orientation ``o``; output
    ``pos + 1/O Σ_o f(o) o``. ``self_loops=True`` adds each node's own fiber to its convolution (as the
    reference's N-body runs). ``layer_scale=None`` (the reference's N-body setting) or a float for the
    initial γ. The grid is ``fibonacci_sphere(num_ori)``, a buffer.

    >>> model = PONITA(node_dim=1, hidden=16, layers=2, num_ori=8)
    >>> edge_index = torch.tensor([[0, 1], [1, 0]])
    >>> model(torch.randn(2, 3), torch.randn(2, 3), torch.ones(2, 1), edge_index).shape
    torch.Size([2, 3])
    """

    def __init__(self, node_dim: int = 1, hidden: int = 64, layers: int = 4, *, num_ori: int = 16,
                 basis_dim: int | None = None, degree: int = 3, widening_factor: int = 4,
                 layer_scale: float | None = None, self_loops: bool = True) -> None:
        super().__init__()
        basis_dim = hidden if basis_dim is None else basis_dim
        _check_hyperparameters(node_dim, hidden, layers, basis_dim, degree, widening_factor)
        if not isinstance(num_ori, int) or num_ori < 1:
            raise ValueError(f"num_ori must be an integer >= 1, got {num_ori!r}")
        self.node_dim = node_dim
        self.self_loops = self_loops
        grid = fibonacci_sphere(num_ori).to(torch.get_default_dtype())
        self.register_buffer("orientations", grid)  # [O, 3]
        self.spatial_basis = KernelBasis(2, hidden, basis_dim, degree)
        self.sphere_basis = KernelBasis(1, hidden, basis_dim, degree)
        self.embedding = nn.Linear(node_dim + 2, hidden)
        self.blocks = nn.ModuleList(
            ConvNextBlock(hidden, SeparableSphereConv(hidden, basis_dim), widening_factor, layer_scale)
            for _ in range(layers)
        )
        self.readout = nn.Linear(hidden, 1)

    @property
    def num_ori(self) -> int:
        return self.orientations.shape[0]

    def forward(self, pos: Tensor, vel: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """pos, vel ``[N, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]`` -> positions ``[N, 3]``.

        ``batch`` is accepted for the uniform model interface; node-level outputs need no pooling.
        """
        check_dynamics_inputs(self, pos, vel, node_features)
        n, ori = pos.shape[0], self.orientations
        edge_index = _prepare_graph(edge_index, n, self.self_loops)
        src, dst = edge_index
        spatial_basis = self.spatial_basis(position_orientation_invariants(pos[src] - pos[dst], ori))
        sphere_basis = self.sphere_basis((ori @ ori.T)[..., None])
        scalars = torch.cat([node_features, safe_norm(vel, keepdim=True)], -1)
        lifted = torch.cat([scalars[:, None, :].expand(-1, self.num_ori, -1), (vel @ ori.T)[..., None]], -1)
        x = self.embedding(lifted)  # [N, O, hidden]
        for block in self.blocks:
            x = block(x, edge_index, spatial_basis, sphere_basis)
        return pos + self.readout(x)[..., 0] @ ori / self.num_ori


class PONITAR3(nn.Module):
    """Point-cloud PONITA on R³ alone: invariant pair attributes, scalar node features, exactly E(3)-equivariant.

    For a message from j to i with ``Δ = p_j − p_i`` the kernel attributes are ``[|Δ|, Δ·v_i, Δ·v_j, v_i·v_j]``:
    the pairwise distance, plus the velocity invariants without which the velocity directions, the only vector
    input besides positions, could not reach the network. Node input ``[node_features, |v|]``. The vector
    readout is built on relative positions and the node's velocity,

        pos_i + mean_j w_ij Δ_ij + u_i v_i,    w_ij = w(LayerNorm(h_j ⊙ k(a_ij))),  u_i = u(h_i),

    the mean over the neighbours and the self-loop (whose Δ is 0), normalized as EGNN's coordinate update.
    """

    def __init__(self, node_dim: int = 1, hidden: int = 64, layers: int = 4, *, basis_dim: int | None = None,
                 degree: int = 3, widening_factor: int = 4, layer_scale: float | None = None,
                 self_loops: bool = True) -> None:
        super().__init__()
        basis_dim = hidden if basis_dim is None else basis_dim
        _check_hyperparameters(node_dim, hidden, layers, basis_dim, degree, widening_factor)
        self.node_dim = node_dim
        self.self_loops = self_loops
        self.basis = KernelBasis(4, hidden, basis_dim, degree)
        self.embedding = nn.Linear(node_dim + 1, hidden)
        self.blocks = nn.ModuleList(
            ConvNextBlock(hidden, PointConv(hidden, basis_dim), widening_factor, layer_scale) for _ in range(layers)
        )
        self.readout_kernel = nn.Linear(basis_dim, hidden, bias=False)
        self.readout_norm = nn.LayerNorm(hidden)
        self.edge_readout = nn.Linear(hidden, 1)
        self.velocity_readout = nn.Linear(hidden, 1)

    def forward(self, pos: Tensor, vel: Tensor, node_features: Tensor, edge_index: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """pos, vel ``[N, 3]``, node_features ``[N, node_dim]``, edge_index ``[2, E]`` -> positions ``[N, 3]``.

        ``batch`` is accepted for the uniform model interface; node-level outputs need no pooling.
        """
        check_dynamics_inputs(self, pos, vel, node_features)
        n = pos.shape[0]
        edge_index = _prepare_graph(edge_index, n, self.self_loops)
        src, dst = edge_index
        rel = pos[src] - pos[dst]
        attributes = torch.stack([safe_norm(rel), (rel * vel[dst]).sum(-1), (rel * vel[src]).sum(-1),
                                  (vel[src] * vel[dst]).sum(-1)], -1)
        basis = self.basis(attributes)  # [E, B]
        x = self.embedding(torch.cat([node_features, safe_norm(vel, keepdim=True)], -1))
        for block in self.blocks:
            x = block(x, edge_index, basis)
        edge_weights = self.edge_readout(self.readout_norm(x[src] * self.readout_kernel(basis)))
        return pos + scatter_mean(edge_weights * rel, dst, n) + self.velocity_readout(x) * vel

