r"""Charged particles in a uniform gravity field above a floor: dynamics that are only subequivariant.

The charged N-body system of :mod:`liequiv.data.nbody` (unit masses, charges ±1, Coulomb forces with k = 1), here
Plummer-softened (``|r|² → |r|² + ε²``, no clipping, so that energy is conserved and rotations act exactly), in a
uniform field ``−g₀ e_z`` above the floor ``z = 0``, which the particles bounce off elastically. With ``x_i - x_j``
the difference of positions and unit masses,

    a_i = k q_i Σ_j q_j (x_i − x_j) / (|x_i − x_j|² + ε²)^{3/2} − g₀ e_z.

Integration: velocity Verlet (kick-drift-kick) with dt = 0.001; after each drift a particle below the floor is
reflected, ``z → −z`` and ``v_z → −v_z``. Frames every ``sample_freq`` steps including the initial state (41 frames:
steps 0, 100, ..., 4000). The energy ``Σ ½ |v|² + Σ_{i<j} k q_i q_j / sqrt(r² + ε²) + Σ g₀ z`` is conserved up to
the integrator's O(dt²) error between bounces; a reflection, which happens at the step after the crossing rather
than at the crossing, changes it by at most ``2 g₀ |v_z| dt``. ``bounces [T, frames]`` counts the reflections
since the previous frame.

Symmetry: the dynamics commute with rotations about the vertical, mirrors through vertical planes and horizontal
translations (a subgroup of E(3): the one that fixes the gravity direction ``ĝ = −e_z`` and the floor), and with no
other rotation. Each sample carries ``gravity = ĝ = (0, 0, −1)``.

Initial states: horizontal positions ~ ``loc_std · N(0, 1)``, heights ``height + loc_std · |N(0, 1)|``, velocities
of norm ``vel_norm`` in uniformly random directions, charges ±1 with probability ½ each. Splits
(``GravityConfig.split_sizes``, 3,000 / 500 / 500 trajectories): one ``np.random.RandomState(seed)`` draws the
training split, then validation, then test, each as a block (charges, positions, velocities); a split is regenerated
by drawing the stream through it. Generated on first use (seconds) and cached through :mod:`liequiv.data.cache`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from liequiv.data.cache import cache_root, cached_arrays, params_hash
from liequiv.data.nbody import _split_name, collate_nbody, initial_conditions_of_split
from liequiv.nn.graph import fully_connected_edges

GENERATOR_VERSION = 1  # bump when a change alters the generated numbers (invalidates caches)
GRAVITY_DIRECTION = (0.0, 0.0, -1.0)


@dataclass(frozen=True)
class GravityConfig:
    """Parameters of the generator; every field enters the cache key.

    ``gravity`` is g₀, ``strength`` the Coulomb constant k, ``softening`` ε; ``height`` and ``loc_std`` set the
    initial heights and spread, ``vel_norm`` the initial speed. ``split_sizes``: trajectories of train, valid, test.
    """

    n_particles: int = 5
    n_steps: int = 4000
    sample_freq: int = 100
    dt: float = 0.001
    seed: int = 7
    gravity: float = 1.0
    strength: float = 1.0
    softening: float = 0.1
    loc_std: float = 1.0
    height: float = 0.5
    vel_norm: float = 0.5
    split_sizes: tuple[int, int, int] = (3_000, 500, 500)

    def __post_init__(self) -> None:
        if self.n_particles < 1 or self.sample_freq < 1 or self.n_steps < 0 or self.n_steps % self.sample_freq:
            raise ValueError("need n_particles >= 1, sample_freq >= 1 and n_steps >= 0 a multiple of sample_freq, got "
                             f"{self.n_particles}, {self.sample_freq}, {self.n_steps}")
        if not (self.dt > 0 and self.softening > 0 and self.gravity >= 0 and self.height >= 0):
            raise ValueError(f"need dt > 0, softening > 0, gravity >= 0, height >= 0, got {self.dt}, "
                             f"{self.softening}, {self.gravity}, {self.height}")
        if len(self.split_sizes) != 3 or min(self.split_sizes) < 0:
            raise ValueError(f"split_sizes must be three sizes >= 0 (train, valid, test), got {self.split_sizes}")

    @property
    def n_frames(self) -> int:
        """Saved frames: steps 0, sample_freq, ..., n_steps."""
        return self.n_steps // self.sample_freq + 1

    def key(self) -> str:
        """Hash of the generator's parameters, used in cache file names."""
        return params_hash({**dataclasses.asdict(self), "version": GENERATOR_VERSION})


def draw_initial_conditions(config: GravityConfig, n_trajectories: int, rng: np.random.RandomState) -> dict:
    """``loc0``, ``vel0 [T, N, 3]`` and ``charges [T, N, 1]`` of ``n_trajectories`` states, drawn from ``rng``."""
    t, n = n_trajectories, config.n_particles
    charges = np.where(rng.random_sample((t, n, 1)) < 0.5, -1.0, 1.0)
    loc0 = config.loc_std * rng.randn(t, n, 3)
    loc0[..., 2] = config.height + np.abs(loc0[..., 2])
    vel0 = rng.randn(t, n, 3)
    vel0 *= config.vel_norm / np.linalg.norm(vel0, axis=-1, keepdims=True)
    return {"loc0": loc0, "vel0": vel0, "charges": charges}


def _acceleration(config: GravityConfig, x: np.ndarray, coupling: np.ndarray) -> np.ndarray:
    """Accelerations on states ``x [3, N, T]`` (trajectories last, so that each operation is one long vector: several
    times faster than ``[T, N, 3]`` for 5 particles), with ``coupling = k q_i q_j [N, N, T]``."""
    diff = x[:, :, None, :] - x[:, None, :, :]  # [3, N, N, T]: x_i − x_j (zero on the diagonal)
    weight = diff[0] * diff[0]
    weight += diff[1] * diff[1]
    weight += diff[2] * diff[2]
    weight += config.softening**2
    root = np.sqrt(weight)
    root *= weight
    np.divide(coupling, root, out=root)
    diff *= root
    acc = diff.sum(2)
    acc[2] -= config.gravity
    return acc


def _pair_coupling(config: GravityConfig, charges: np.ndarray) -> np.ndarray:
    """``k q_i q_j [N, N, T]`` from ``charges [T, N, 1]``."""
    charges = np.asarray(charges, dtype=np.float64)
    return np.ascontiguousarray((config.strength * charges * charges.swapaxes(-1, -2)).transpose(1, 2, 0))


def accelerations(config: GravityConfig, loc: np.ndarray, charges: np.ndarray) -> np.ndarray:
    """``a_i = k q_i Σ_j q_j (x_i − x_j) / (|x_i − x_j|² + ε²)^{3/2} − g₀ e_z`` ``[T, N, 3]`` at ``loc [T, N, 3]``
    (unit masses), for ``charges [T, N, 1]``."""
    x = np.ascontiguousarray(np.asarray(loc, dtype=np.float64).transpose(2, 1, 0))
    return _acceleration(config, x, _pair_coupling(config, charges)).transpose(2, 1, 0)


def integrate(config: GravityConfig, loc0: np.ndarray, vel0: np.ndarray, charges: np.ndarray) -> dict:
    """Run the physics (float64, no randomness) from ``loc0, vel0 [T, N, 3]`` (heights >= 0), ``charges [T, N, 1]``.

    Returns ``loc``, ``vel [T, frames, N, 3]`` and ``bounces [T, frames]`` (floor reflections since the previous
    frame; 0 at frame 0).
    """
    x = np.array(np.transpose(loc0, (2, 1, 0)), dtype=np.float64, order="C")  # [3, N, T], a copy
    v = np.array(np.transpose(vel0, (2, 1, 0)), dtype=np.float64, order="C")
    if (x[2] < 0).any():
        raise ValueError("initial heights loc0[..., 2] must be >= 0 (the floor is z = 0)")
    coupling = _pair_coupling(config, charges)
    frames, freq, dt = config.n_frames, config.sample_freq, config.dt
    t, n = x.shape[2], x.shape[1]
    loc_out = np.empty((t, frames, n, 3))
    vel_out = np.empty_like(loc_out)
    bounces = np.zeros((t, frames), dtype=np.int64)
    acc = _acceleration(config, x, coupling)
    for step in range(config.n_steps + 1):
        if step % freq == 0:
            loc_out[:, step // freq], vel_out[:, step // freq] = x.T, v.T
        if step == config.n_steps:
            break
        v += acc * (dt / 2)
        x += v * dt
        below = x[2] < 0  # [N, T]
        np.abs(x[2], out=x[2])
        v[2] = np.where(below, -v[2], v[2])
        bounces[:, step // freq + 1] += below.sum(0)
        acc = _acceleration(config, x, coupling)
        v += acc * (dt / 2)
    return {"loc": loc_out, "vel": vel_out, "bounces": bounces}


def energy(config: GravityConfig, loc: np.ndarray, vel: np.ndarray, charges: np.ndarray) -> np.ndarray:
    """Total energy ``[...]`` of states ``loc, vel [..., N, 3]`` with ``charges [..., N, 1]`` (broadcast against the
    batch dimensions of ``loc``; unit masses):
    ``Σ ½ |v|² + Σ_{i<j} k q_i q_j / sqrt(r² + ε²) + Σ g₀ z``."""
    diff = loc[..., :, None, :] - loc[..., None, :, :]
    n = loc.shape[-2]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    pair = config.strength * charges * charges.swapaxes(-1, -2) / np.sqrt((diff * diff).sum(-1) + config.softening**2)
    kinetic = 0.5 * (vel * vel).sum((-1, -2))
    return kinetic + np.where(upper, pair, 0.0).sum((-1, -2)) + config.gravity * loc[..., 2].sum(-1)


def generate_split(config: GravityConfig, split: str) -> dict:
    """One split as numpy arrays: ``loc``, ``vel``, ``bounces`` (see :func:`integrate`) and ``charges [T, N, 1]``;
    the random stream is drawn through the earlier splits first."""
    init = initial_conditions_of_split(config, _split_name(split), draw_initial_conditions)
    return {**integrate(config, init["loc0"], init["vel0"], init["charges"]), "charges": init["charges"]}


def load_split(split: str = "train", cache_dir: str | os.PathLike | None = None,
               config: GravityConfig | None = None) -> dict:
    """:func:`generate_split`, from the cache file ``<cache>/gravity_<split>_<hash of config>.npz`` or generated
    and cached (cache directory: ``cache_dir``, ``$LIEQUIV_CACHE`` or ``~/.cache/liequiv``)."""
    split = _split_name(split)
    config = GravityConfig() if config is None else config
    path = cache_root(cache_dir) / f"gravity_{split}_{config.key()}.npz"
    params = {**dataclasses.asdict(config), "version": GENERATOR_VERSION, "split": split}
    return cached_arrays(path, params, lambda: generate_split(config, split), ("loc", "vel", "bounces", "charges"),
                         what=f"the gravity {split} split")


class GravityDataset(Dataset):
    """Samples of a split: the state at ``frame_in`` and the positions at ``frame_out`` (1,000 steps later by default).

    Each sample is a dict of tensors: ``pos``, ``vel``, ``target [N, 3]``, ``charges [N, 1]``, ``edge_attr
    [N(N-1), 1]`` (``q_i q_j`` on :func:`~liequiv.nn.graph.fully_connected_edges`' edges) and ``gravity [3]``, the
    unit direction of gravity ``(0, 0, −1)``. Batch with :func:`collate_gravity`. ``max_samples`` keeps the first
    trajectories of the split.
    """

    def __init__(self, split: str = "train", frame_in: int = 30, frame_out: int = 40, *,
                 cache_dir: str | os.PathLike | None = None, config: GravityConfig | None = None,
                 max_samples: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        config = GravityConfig() if config is None else config
        if not (0 <= frame_in < config.n_frames and 0 <= frame_out < config.n_frames):
            raise ValueError(f"frames must lie in [0, {config.n_frames}), got {frame_in}, {frame_out}")
        self.config, self.split, self.frame_in, self.frame_out = config, _split_name(split), frame_in, frame_out
        data = load_split(self.split, cache_dir, config)

        def tensor(array: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(array[:max_samples])).to(dtype)

        self.pos, self.vel = tensor(data["loc"][:, frame_in]), tensor(data["vel"][:, frame_in])
        self.target, self.charges = tensor(data["loc"][:, frame_out]), tensor(data["charges"])
        self.gravity = torch.tensor(GRAVITY_DIRECTION, dtype=dtype)
        self.edge_index = fully_connected_edges(config.n_particles)

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        src, dst = self.edge_index
        charges = self.charges[i]
        return {"pos": self.pos[i], "vel": self.vel[i], "target": self.target[i], "charges": charges,
                "edge_attr": charges[src] * charges[dst], "gravity": self.gravity}


def collate_gravity(samples: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """:func:`~liequiv.data.nbody.collate_nbody` for the node and edge tensors, with ``gravity`` stacked to
    ``[B, 3]`` (one direction per graph, read through ``batch [B·N]``)."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    out = collate_nbody([{key: value for key, value in s.items() if key != "gravity"} for s in samples])
    out["gravity"] = torch.stack([s["gravity"] for s in samples])
    return out
