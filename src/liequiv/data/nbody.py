"""N-body data sets generated locally: charged particles (EGNN), springs (NRI in 3D), gravity (SEGNN).

Written from the published descriptions of Kipf et al.'s NRI simulator (``synthetic_sim.py``), its 3D
version in the EGNN benchmark (Satorras et al., 2021; ``vgsatorras/egnn``, ``n_body_system/dataset``) and
the gravity simulator of SEGNN (Brandstetter et al., 2022; ``RobDHess/Steerable-E3-GNN``, ``nbody/dataset``).
The random numbers are drawn in the order of those generators, from one legacy ``np.random.RandomState``,
so that their published splits are regenerated (charges exactly, positions up to float round-off, which
chaotic close encounters amplify in a few trajectories); the physics draws no random numbers and runs
vectorized over all trajectories of a split in float64.

Kinds (``NBodyConfig.preset(kind)``):

``"charged"`` (EGNN's ``nbody_small``): 5 particles of unit mass, charges ±1 with probability ½ each,
    positions ~ N(0, 1) (NRI's ``loc_std`` 1, scaled by ``(n/5)^(1/3)``), velocities ~ N(0, 1) rescaled to
    norm 0.5 per particle; force on i: ``F_i = Σ_j k q_i q_j (x_i - x_j)/|x_i - x_j|³`` with k = 1, each
    component of the *net* force clipped to ±100 (= 0.1/dt). dt = 0.001, 5000 steps, a frame every 100
    steps (49 frames: steps 100, 200, ..., 4900; the initial state is not kept).
``"springs"`` (NRI springs in 3D, as in EGNN's code): 5 particles, each pair joined with probability ½ by a
    spring of constant ``0.1`` (NRI's ``interaction_strength``), positions ~ 0.5 N(0, 1), velocities of norm 0.5,
    ``F_i = -k Σ_j e_ij (x_i - x_j)``, the same clipping, steps and frames.
``"gravity"`` (SEGNN's ``gravity100 ... small``): 100 particles of unit mass, positions and velocities
    ~ N(0, 1) (no rescaling; the mean velocity is removed), softened Newtonian attraction
    ``a_i = G Σ_j m_j (x_j - x_i)/(|x_j - x_i|² + ε²)^{3/2}`` with G = 1, ε = 0.1, no clipping, velocity
    Verlet (kick-drift-kick) with dt = 0.001, 5000 steps, a frame every 100 steps *including* the initial
    state (50 frames: steps 0, 100, ..., 4900), forces ``m a`` saved with each frame. SEGNN's models
    connect each particle to its 6 nearest neighbours, built at run time; the data set itself has no edges.

Integrators. NRI/EGNN (``charged``, ``springs``): one kick ``v += first_kick · dt · F(x₀)`` and then, per
step, drift ``x += dt v``, save if the step is a frame, kick ``v += dt F(x)``. The published code labels the
first kick "half step leapfrog" but applies a *full* dt kick (``first_kick = 1``); that is what reproduces
the published data, so it is the default (``first_kick = 0.5`` gives the textbook leapfrog). Either way the
saved velocity is the one that produced the saved position, half a step behind it. There are no walls
during the run; the initial state is reflected into the box ``[-5, 5]³`` as NRI does (with N(0, 1)
positions this practically never triggers).

Splits (``NBodyConfig.split_sizes``): ``RandomState(seed)`` draws 10,000 training trajectories, then 2,000
validation, then 2,000 test, every draw of trajectory i before any of trajectory i+1; per trajectory the
draws are (charged) charges ``choice([-1, 0, 1], (n, 1), p=[½, 0, ½])``, positions ``randn(3, n)``,
velocities ``randn(3, n)`` and two unused noise arrays ``randn(49, 3, n)``; (springs) the same with the
``[n, n]`` spring matrix in place of the charges; (gravity) positions ``randn(n, 3)``, velocities
``randn(n, 3)``, three noise arrays ``randn(50, n, 3)``. Only the first 3,000 training trajectories are used
(EGNN's and SEGNN's ``max_samples``), so only those are simulated.

Tasks: ``NBodyDataset``, from positions, velocities and charges at frame 30, predict positions at frame 40
(1,000 steps later for every kind); ``NBodyTrajectoryDataset``, from ``history`` frames predict the next
``horizon`` (by default frames 0-9 -> 10-29).

Reproduction (charged, checked against a literal per-trajectory re-statement of the published loops):
draws and charges are identical; the physics here is reorganised for speed (trajectories as the innermost
axis, ``|x_i - x_j|²`` from differences rather than NRI's ``|x_i|² + |x_j|² - 2 x_i·x_j``, ``r³`` as
``r² sqrt(r²)``), which changes the rounding. Positions then agree to 1e-13 (median) for about 95 % of the
trajectories; the other ~5 %, all of them through clipped close encounters, where the dynamics is
chaotic, diverge by more than 1e-3 by frame 40 (in a re-statement with NRI's exact operation order they
agree bitwise on the same numpy/BLAS, but the published files came from another machine's BLAS). The
test-split baselines: ``target = x30`` has MSE 0.2715 and ``x30 + v30 · 1.0`` (1,000 steps of dt 0.001)
0.1079 (0.1090 with NRI's operation order: the third digit is within round-off of a few trajectories);
the least-squares ``x30 + t v30`` has t ≈ 0.72 and MSE 0.084. The charged splits take seconds to
generate; gravity (100 particles, 7,000 trajectories) takes hours, once, then is cached (float32, about 0.5 GB
for its training split).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from liequiv.data.cache import cache_root, cached_arrays, params_hash
from liequiv.nn.graph import fully_connected_edges

KINDS = ("charged", "springs", "gravity")
SPLITS = ("train", "valid", "test")
GENERATOR_VERSION = 2  # bump when a change alters the generated numbers (invalidates caches)


@dataclass(frozen=True)
class NBodyConfig:
    """Parameters of an N-body generator; every field enters the cache key.

    Use :meth:`preset` for the published settings of each kind and override fields from there.
    ``strength`` is k (charged), the spring constant scale (springs) or G (gravity); ``max_force`` clips each
    component of the net force (``None``: no clipping); ``box_size`` reflects the initial state into
    ``[-box, box]³`` (``None``: off); ``vel_norm`` rescales each initial velocity to that norm (``None``: keep the
    Gaussian draw and remove the mean, as SEGNN's gravity); ``softening`` is ε of gravity; ``first_kick`` is
    the fraction of dt of the NRI scheme's first kick. ``split_sizes`` are the numbers of trajectories drawn
    for train, valid, test; ``n_train`` of the training ones are simulated and kept.
    """

    kind: str = "charged"
    n_particles: int = 5
    n_steps: int = 5000
    sample_freq: int = 100
    dt: float = 0.001
    seed: int = 43
    strength: float = 1.0
    loc_std: float = 1.0
    vel_norm: float | None = 0.5
    max_force: float | None = 100.0
    box_size: float | None = 5.0
    softening: float = 0.0
    first_kick: float = 1.0
    split_sizes: tuple[int, int, int] = (10_000, 2_000, 2_000)
    n_train: int = 3_000
    store_dtype: str = "float64"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.n_particles < 2 or self.sample_freq < 1 or self.n_steps % self.sample_freq:
            raise ValueError("need n_particles >= 2 and n_steps a multiple of sample_freq >= 1")
        if self.n_frames < 1:
            raise ValueError(f"no frame is saved with n_steps={self.n_steps}, sample_freq={self.sample_freq}")
        if not 0 <= self.n_train <= self.split_sizes[0]:
            raise ValueError(f"n_train={self.n_train} must lie in [0, {self.split_sizes[0]}]")
        if self.store_dtype not in ("float32", "float64"):
            raise ValueError(f"store_dtype must be 'float32' or 'float64', got {self.store_dtype!r}")

    @classmethod
    def preset(cls, kind: str = "charged", **overrides) -> NBodyConfig:
        """The published settings of ``kind`` ("charged", "springs", "gravity"), with ``overrides`` applied."""
        fields = {
            "charged": {},
            "springs": {"strength": 0.1, "loc_std": 0.5},
            "gravity": {"n_particles": 100, "vel_norm": None, "max_force": None, "box_size": None,
                        "softening": 0.1, "store_dtype": "float32"},
        }
        if kind not in fields:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return cls(kind=kind, **{**fields[kind], **overrides})

    @property
    def verlet(self) -> bool:
        """Gravity uses velocity Verlet and keeps the initial frame; the NRI kinds do neither."""
        return self.kind == "gravity"

    @property
    def n_frames(self) -> int:
        """Saved frames: 50 for gravity (steps 0, 100, ..., 4900), 49 otherwise (steps 100, ..., 4900)."""
        return self.n_steps // self.sample_freq - (0 if self.verlet else 1)

    def frame_step(self, frame: int) -> int:
        """The integration step at which ``frame`` is saved."""
        return (frame if self.verlet else frame + 1) * self.sample_freq

    def key(self) -> str:
        """Hash of the generator's parameters, used in cache file names."""
        return params_hash({**dataclasses.asdict(self), "version": GENERATOR_VERSION})


# ----------------------------------------------------------------------------------------------------------
# Random initial conditions, in the published draw order.

def draw_initial_conditions(config: NBodyConfig, n_trajectories: int, rng: np.random.RandomState) -> dict:
    """Draw ``n_trajectories`` initial states from ``rng`` in the original per-trajectory order.

    Returns ``loc0``, ``vel0`` ``[T, N, 3]`` and, by kind, ``charges [T, N, 1]`` (charged), ``edges [T, N, N]``
    (charged: ``q qᵀ``; springs: spring constants in {0, 1}, symmetric, zero diagonal) or ``masses [T, N, 1]``
    (gravity: ones). The unused observation-noise arrays of the originals are drawn and discarded, so
    that the stream stays aligned with theirs.
    """
    if not isinstance(rng, np.random.RandomState):
        raise TypeError("rng must be a legacy np.random.RandomState (the published generators use one)")
    n, frames, t = config.n_particles, config.n_frames, n_trajectories
    loc0 = np.empty((t, n, 3))
    vel0 = np.empty((t, n, 3))
    out: dict[str, np.ndarray] = {}
    if config.kind == "gravity":
        for i in range(t):
            loc0[i] = rng.randn(n, 3) * config.loc_std
            vel0[i] = rng.randn(n, 3)
            for _ in range(3):  # noise on positions, velocities, forces (variance 0 in the published data)
                rng.randn(frames, n, 3)
        out["masses"] = np.ones((t, n, 1))
    else:
        types = np.array([-1.0, 0.0, 1.0]) if config.kind == "charged" else np.array([0.0, 0.5, 1.0])
        shape = (n, 1) if config.kind == "charged" else (n, n)
        pairs = np.empty((t, *shape))
        std = config.loc_std * (n / 5.0) ** (1 / 3) if config.kind == "charged" else config.loc_std
        for i in range(t):
            pairs[i] = rng.choice(types, size=shape, p=[0.5, 0.0, 0.5])
            loc0[i] = (rng.randn(3, n) * std).T
            vel0[i] = rng.randn(3, n).T
            rng.randn(frames, 3, n)  # noise on positions (variance 0)
            rng.randn(frames, 3, n)  # noise on velocities
        if config.kind == "charged":
            out["charges"] = pairs
            out["edges"] = pairs @ pairs.swapaxes(-1, -2)
        else:
            lower = np.tril(pairs, -1)
            out["edges"] = lower + lower.swapaxes(-1, -2)
    if config.vel_norm is None:
        vel0 -= vel0.mean(1, keepdims=True)  # centre-of-mass frame (unit masses)
    else:
        vel0 = vel0 * config.vel_norm / np.sqrt((vel0**2).sum(-1, keepdims=True))
    if config.box_size is not None:
        loc0, vel0 = _reflect_into_box(loc0, vel0, config.box_size)
    return {"loc0": loc0, "vel0": vel0, **out}


def _reflect_into_box(loc: np.ndarray, vel: np.ndarray, box: float) -> tuple[np.ndarray, np.ndarray]:
    over = loc > box
    loc = np.where(over, 2 * box - loc, loc)
    vel = np.where(over, -np.abs(vel), vel)
    under = loc < -box
    loc = np.where(under, -2 * box - loc, loc)
    vel = np.where(under, np.abs(vel), vel)
    return loc, vel


# ----------------------------------------------------------------------------------------------------------
# Physics (deterministic, vectorized over trajectories).

class _TrajectoriesLast:
    """Forces of the NRI kinds on states ``[3, N, T]``: trajectories last, so each operation is one long vector.

    (For 5 particles this is several times faster than ``[T, N, 3]``, whose innermost axes are tiny.)
    """

    def __init__(self, config: NBodyConfig, edges: np.ndarray) -> None:
        n = edges.shape[1]
        off = 1.0 - np.eye(n)
        sign = 1.0 if config.kind == "charged" else -1.0  # like charges repel; springs pull together
        self.coeff = np.ascontiguousarray(sign * config.strength * edges.transpose(1, 2, 0) * off[:, :, None])
        self.diag = np.eye(n)[:, :, None]
        self.charged = config.kind == "charged"

    @staticmethod
    def to_state(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(a, dtype=np.float64).transpose(2, 1, 0))

    @staticmethod
    def from_state(state: np.ndarray) -> np.ndarray:
        return state.T

    @staticmethod
    def per_trajectory(mask: np.ndarray) -> np.ndarray:
        return mask.any(0).any(0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        diff = x[:, :, None, :] - x[:, None, :, :]  # [3, N, N, T]: x_i - x_j
        if self.charged:  # F_i = Σ_j k q_i q_j (x_i - x_j) / |x_i - x_j|³
            dist2 = diff[0] * diff[0]
            dist2 += diff[1] * diff[1]
            dist2 += diff[2] * diff[2]
            dist2 += self.diag  # the diagonal (exactly 0) becomes 1; its coefficient is 0: no self-force
            size = np.sqrt(dist2)
            size *= dist2
            np.divide(self.coeff, size, out=size)
        else:  # springs: F_i = -Σ_j k e_ij (x_i - x_j)
            size = self.coeff
        diff *= size
        return diff.sum(2)


class _TrajectoriesFirst:
    """Softened gravity on states ``[T, N, 3]``, with batched matrix products (100 particles).

    ``F_i = G m_i Σ_j m_j w_ij (x_j - x_i) = G m_i (Σ_j w_ij m_j x_j - x_i Σ_j w_ij m_j)`` with
    ``w_ij = (|x_i - x_j|² + ε²)^{-3/2}``, ``w_ii = 0`` and ``|x_i - x_j|²`` from the Gram matrix: a few
    times faster than forming all differences, the same physics up to round-off.
    """

    def __init__(self, config: NBodyConfig, masses: np.ndarray) -> None:
        self.mass = np.asarray(masses, dtype=np.float64)  # [T, N, 1]
        self.strength, self.eps2 = config.strength, config.softening**2
        self.idx = np.arange(self.mass.shape[1])

    @staticmethod
    def to_state(a: np.ndarray) -> np.ndarray:
        return np.array(a, dtype=np.float64)

    @staticmethod
    def from_state(state: np.ndarray) -> np.ndarray:
        return state

    @staticmethod
    def per_trajectory(mask: np.ndarray) -> np.ndarray:
        return mask.any(-1).any(-1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        sq = (x * x).sum(-1)
        w = x @ x.swapaxes(-1, -2)
        w *= -2.0
        w += sq[:, :, None]
        w += sq[:, None, :]
        w += self.eps2
        root = np.sqrt(w)
        root *= w
        np.divide(1.0, root, out=root)
        root[:, self.idx, self.idx] = 0.0
        sums = root @ np.concatenate([self.mass * x, self.mass], -1)  # [T, N, 4]: Σ_j w m_j x_j, Σ_j w m_j
        return self.strength * self.mass * (sums[..., :3] - x * sums[..., 3:])


def _force_model(config: NBodyConfig, coupling: np.ndarray) -> _TrajectoriesLast | _TrajectoriesFirst:
    coupling = np.asarray(coupling, dtype=np.float64)
    return _TrajectoriesFirst(config, coupling) if config.kind == "gravity" else _TrajectoriesLast(config, coupling)


def forces(config: NBodyConfig, loc: np.ndarray, coupling: np.ndarray) -> np.ndarray:
    """Net forces ``[T, N, 3]`` at positions ``loc [T, N, 3]``, before clipping.

    ``coupling`` is ``edges [T, N, N]`` (charged: ``q_i q_j``; springs: spring constants) or, for gravity,
    ``masses [T, N, 1]``. Pairwise terms are antisymmetric, so the forces sum to zero per trajectory.
    """
    model = _force_model(config, coupling)
    return np.array(model.from_state(model(model.to_state(loc))))


def integrate(config: NBodyConfig, loc0: np.ndarray, vel0: np.ndarray, coupling: np.ndarray) -> dict:
    """Run the physics from initial states ``loc0, vel0 [T, N, 3]`` (float64, no randomness).

    ``coupling`` as in :func:`forces`. Returns ``loc``, ``vel [T, frames, N, 3]``, ``clipped [T]`` (whether
    any force component was clipped in the run) and, for gravity, ``force [T, frames, N, 3]``. Clipping
    acts on each component of the *net* force of a particle, not on pair forces, so where it is active
    it breaks momentum conservation and rotation equivariance; about half of the charged trajectories
    (46 % of the test split) are clipped at least once, at close encounters of opposite charges.
    """
    model = _force_model(config, coupling)
    t, n = np.shape(loc0)[:2]
    x, v = model.to_state(loc0), model.to_state(vel0)
    frames, freq, dt, limit = config.n_frames, config.sample_freq, config.dt, config.max_force
    loc_out = np.empty((t, frames, n, 3))
    vel_out = np.empty((t, frames, n, 3))
    clipped = np.zeros(t, dtype=bool)

    def force(x: np.ndarray) -> np.ndarray:
        f = model(x)
        if limit is None:
            return f
        clipped[:] |= model.per_trajectory(np.abs(f) > limit)
        return np.clip(f, -limit, limit, out=f)

    last = config.frame_step(frames - 1)  # nothing after the last saved frame matters
    if config.verlet:  # kick-drift-kick, frames at steps 0, freq, 2 freq, ...
        force_out = np.empty((t, frames, n, 3))
        mass = model.mass
        acc = force(x) / mass
        for step in range(last + 1):
            if step % freq == 0:
                k = step // freq
                loc_out[:, k], vel_out[:, k], force_out[:, k] = x, v, acc * mass
            if step == last:
                break
            v += acc * (dt / 2)
            x += v * dt
            acc = force(x) / mass
            v += acc * (dt / 2)
        return {"loc": loc_out, "vel": vel_out, "force": force_out, "clipped": clipped}
    v += (config.first_kick * dt) * force(x)  # NRI/EGNN: one kick, then drift-kick steps
    for step in range(1, last + 1):
        x += dt * v
        if step % freq == 0:
            k = step // freq - 1
            loc_out[:, k], vel_out[:, k] = model.from_state(x), model.from_state(v)
        if step < last:
            v += dt * force(x)
    return {"loc": loc_out, "vel": vel_out, "clipped": clipped}


def _integrate_chunked(config: NBodyConfig, init: Mapping[str, np.ndarray]) -> dict:
    t = init["loc0"].shape[0]
    coupling_key = "masses" if config.kind == "gravity" else "edges"
    chunk = 16 if config.kind == "gravity" else 512  # trajectories per chunk: fastest measured on 2 cores
    starts = range(0, t, chunk) if t else [0]
    parts = [integrate(config, init["loc0"][s:s + chunk], init["vel0"][s:s + chunk], init[coupling_key][s:s + chunk])
             for s in starts]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def simulate(config: NBodyConfig, n_trajectories: int, rng: np.random.RandomState | None = None) -> dict:
    """Draw ``n_trajectories`` initial states from ``rng`` (default ``RandomState(config.seed)``) and simulate.

    Returns numpy arrays: ``loc``, ``vel [T, frames, N, 3]``, ``clipped [T]``, and by kind ``charges [T, N, 1]``
    and ``edges [T, N, N]`` (charged), ``edges`` (springs), ``masses [T, N, 1]`` and ``force`` (gravity).
    """
    if rng is None:
        rng = np.random.RandomState(config.seed)
    init = draw_initial_conditions(config, n_trajectories, rng)
    out = _integrate_chunked(config, init)
    out.update({key: value for key, value in init.items() if key not in ("loc0", "vel0")})
    return out


def energy(config: NBodyConfig, loc: np.ndarray, vel: np.ndarray, coupling: np.ndarray) -> np.ndarray:
    """Total energy ``[...]`` of states ``loc, vel [..., N, 3]`` (unit masses for the NRI kinds).

    The potential is the one whose gradient is the force: ``Σ_{i<j} k q_i q_j / r`` (charged),
    ``Σ_{i<j} k e_ij r² / 2`` (springs), ``-Σ_{i<j} G m_i m_j / sqrt(r² + ε²)`` (gravity, Plummer-softened).
    ``coupling`` is ``edges [..., N, N]`` or, for gravity, ``masses [..., N, 1]``.
    """
    diff = loc[..., :, None, :] - loc[..., None, :, :]
    dist2 = (diff * diff).sum(-1)
    n = loc.shape[-2]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    if config.kind == "gravity":
        mass = coupling[..., 0]
        kinetic = 0.5 * (mass[..., None] * vel * vel).sum((-1, -2))
        pair = -config.strength * mass[..., :, None] * mass[..., None, :] / np.sqrt(dist2 + config.softening**2)
    else:
        kinetic = 0.5 * (vel * vel).sum((-1, -2))
        if config.kind == "springs":
            pair = 0.5 * config.strength * coupling * dist2
        else:
            pair = config.strength * coupling / np.sqrt(np.where(upper, dist2, 1.0))
    return kinetic + np.where(upper, pair, 0.0).sum((-1, -2))


# ----------------------------------------------------------------------------------------------------------
# Splits, cache, torch data set.

def _split_name(split: str) -> str:
    split = {"val": "valid", "validation": "valid"}.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (or 'val'), got {split!r}")
    return split


def initial_conditions_of_split(config: Any, split: str, draw: Callable[..., dict]) -> dict:
    """``draw(config, size, rng)`` of ``split``, with one ``RandomState(config.seed)`` drawn through the earlier
    splits of ``config.split_sizes`` first (the seed discipline of the locally generated data sets)."""
    rng = np.random.RandomState(config.seed)
    for name, size in zip(SPLITS, config.split_sizes):
        init = draw(config, size, rng)
        if name == split:
            return init
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def generate_split(config: NBodyConfig, split: str) -> dict:
    """Regenerate one split: draw the stream up to and through it, simulate only its kept trajectories."""
    split = _split_name(split)
    init = initial_conditions_of_split(config, split, draw_initial_conditions)
    if split == "train":
        init = {key: value[: config.n_train] for key, value in init.items()}
    out = _integrate_chunked(config, init)
    out.update({key: value for key, value in init.items() if key not in ("loc0", "vel0")})
    dtype = np.dtype(config.store_dtype)
    return {key: value.astype(dtype) if value.dtype == np.float64 else value for key, value in out.items()}


def load_split(kind: str = "charged", split: str = "train", cache_dir: str | os.PathLike | None = None,
               config: NBodyConfig | None = None) -> dict:
    """A split as numpy arrays (see :func:`simulate`), from the cache or generated and cached.

    The cache file is ``<cache>/nbody_<kind>_<split>_<hash of config>.npz`` under ``cache_dir``,
    ``$LIEQUIV_CACHE`` or ``~/.cache/liequiv``; a missing or corrupt file is regenerated with a message.
    Generating the charged test split takes a few seconds; gravity's splits take long (100 particles).
    """
    split = _split_name(split)
    config = NBodyConfig.preset(kind) if config is None else config
    if config.kind != kind:
        raise ValueError(f"config.kind={config.kind!r} does not match kind={kind!r}")
    path = cache_root(cache_dir) / f"nbody_{kind}_{split}_{config.key()}.npz"
    params = {**dataclasses.asdict(config), "version": GENERATOR_VERSION, "split": split}
    required = ("loc", "vel", "clipped", "masses" if kind == "gravity" else "edges")
    return cached_arrays(path, params, lambda: generate_split(config, split), required,
                         what=f"the {kind} N-body {split} split")


class _NBodySamples(Dataset):
    """What every N-body data set holds per trajectory: ``charges [N, 1]`` and the pair couplings.

    ``charges`` is the node scalar of the interaction (charges; masses for gravity; ones for springs, whose
    interaction lives on the edges); ``edge_attr [N(N-1), 1]`` the pair coupling on :func:`fully_connected_edges`'
    edges (``q_i q_j``, spring constants, ``m_i m_j``). Subclasses take their frames from the loaded split in
    :meth:`take_frames` (the split itself is not kept).
    """

    def __init__(self, split: str, kind: str | None, cache_dir: str | os.PathLike | None, config: NBodyConfig | None,
                 max_samples: int | None, dtype: torch.dtype) -> None:
        if config is None:
            config = NBodyConfig.preset(kind or "charged")
        self.kind, self.split, self.config = kind or config.kind, _split_name(split), config
        data = load_split(self.kind, self.split, cache_dir, config)
        self._keep, self._dtype = slice(None, max_samples), dtype
        self.count, n = len(data["loc"][self._keep]), data["loc"].shape[2]
        if self.kind == "charged":
            self.charges = self.tensor(data["charges"])
        elif self.kind == "gravity":
            self.charges = self.tensor(data["masses"])
        else:
            self.charges = torch.ones(self.count, n, 1, dtype=dtype)
        self.edges = self.tensor(data["edges"]) if self.kind == "springs" else None
        self.edge_index = fully_connected_edges(n)
        self.take_frames(data)

    def take_frames(self, data: Mapping[str, np.ndarray]) -> None:
        """Keep the frames the samples need from the split ``data`` (see :func:`load_split`)."""
        raise NotImplementedError

    def tensor(self, array: np.ndarray) -> Tensor:
        """The kept trajectories of ``array`` as a contiguous tensor of the data set's dtype."""
        return torch.from_numpy(np.ascontiguousarray(array[self._keep])).to(self._dtype)

    def __len__(self) -> int:
        return self.count

    def couplings(self, i: int) -> dict[str, Tensor]:
        """``charges`` and ``edge_attr`` of trajectory ``i``."""
        src, dst = self.edge_index
        charges = self.charges[i]
        edge_attr = self.edges[i][src, dst, None] if self.edges is not None else charges[src] * charges[dst]
        return {"charges": charges, "edge_attr": edge_attr}


class NBodyDataset(_NBodySamples):
    """Samples of an N-body split: the state at ``frame_in`` and the positions at ``frame_out``.

    Each sample is a dict of tensors: ``pos``, ``vel``, ``target [N, 3]``, ``charges [N, 1]`` (the node
    scalar of the interaction: charges; masses for gravity; ones for springs, whose interaction lives on the
    edges), ``edge_attr [N(N-1), 1]`` (the pair coupling of :func:`fully_connected_edges`' edges: ``q_i q_j``,
    spring constants, ``m_i m_j``) and, for gravity, ``force [N, 3]`` at ``frame_in``. Batch with
    :func:`collate_nbody`. ``kind`` defaults to ``config.kind`` (``config`` to the preset of ``kind``, else
    "charged"); ``max_samples`` keeps the first samples of the split.
    """

    def __init__(self, split: str = "train", kind: str | None = None, frame_in: int = 30, frame_out: int = 40, *,
                 cache_dir: str | os.PathLike | None = None, config: NBodyConfig | None = None,
                 max_samples: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        frames = (config or NBodyConfig.preset(kind or "charged")).n_frames
        if not (0 <= frame_in < frames and 0 <= frame_out < frames):
            raise ValueError(f"frames must lie in [0, {frames}), got {frame_in}, {frame_out}")
        self.frame_in, self.frame_out = frame_in, frame_out
        super().__init__(split, kind, cache_dir, config, max_samples, dtype)

    def take_frames(self, data: Mapping[str, np.ndarray]) -> None:
        self.pos = self.tensor(data["loc"][:, self.frame_in])
        self.vel = self.tensor(data["vel"][:, self.frame_in])
        self.target = self.tensor(data["loc"][:, self.frame_out])
        self.force = self.tensor(data["force"][:, self.frame_in]) if self.kind == "gravity" else None

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        sample = {"pos": self.pos[i], "vel": self.vel[i], "target": self.target[i], **self.couplings(i)}
        if self.force is not None:
            sample["force"] = self.force[i]
        return sample


class NBodyTrajectoryDataset(_NBodySamples):
    """Trajectory forecasting on an N-body split: ``history`` frames from ``start`` in, the next ``horizon`` out.

    Each sample is a dict of tensors: ``pos``, ``vel [N, history, 3]`` (frames ``start ... start + history - 1``),
    ``target [N, horizon, 3]`` (the positions of the following ``horizon`` frames), ``charges [N, 1]`` and
    ``edge_attr [N(N-1), 1]`` as in :class:`NBodyDataset`. One sample per trajectory, from the same cached splits
    (the defaults use frames 0-9 -> 10-29 of the 49 saved ones); ``start + history + horizon`` may not exceed
    ``config.n_frames``.
    Batch with :func:`collate_nbody` (node tensors are concatenated along the first axis).
    """

    def __init__(self, split: str = "train", kind: str | None = None, history: int = 10, horizon: int = 20,
                 start: int = 0, *, cache_dir: str | os.PathLike | None = None, config: NBodyConfig | None = None,
                 max_samples: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        frames = (config or NBodyConfig.preset(kind or "charged")).n_frames
        if history < 1 or horizon < 1 or start < 0:
            raise ValueError(f"need history >= 1, horizon >= 1 and start >= 0, got {history}, {horizon}, {start}")
        if start + history + horizon > frames:
            raise ValueError(f"start + history + horizon = {start} + {history} + {horizon} exceeds the {frames} "
                             "saved frames")
        self.history, self.horizon, self.start = history, horizon, start
        super().__init__(split, kind, cache_dir, config, max_samples, dtype)

    def take_frames(self, data: Mapping[str, np.ndarray]) -> None:
        start, end = self.start, self.start + self.history
        past, future = slice(start, end), slice(end, end + self.horizon)
        self.pos = self.tensor(data["loc"][:, past].swapaxes(1, 2))  # [T, N, history, 3]
        self.vel = self.tensor(data["vel"][:, past].swapaxes(1, 2))
        self.target = self.tensor(data["loc"][:, future].swapaxes(1, 2))

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"pos": self.pos[i], "vel": self.vel[i], "target": self.target[i], **self.couplings(i)}


def collate_nbody(samples: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Batch samples of equal size into one PyG-style graph.

    Node tensors are concatenated along their first axis (``pos [B·N, 3]``, or ``[B·N, history, 3]`` for
    :class:`NBodyTrajectoryDataset`, ...), ``edge_attr`` likewise, and the batch gets
    ``edge_index [2, B·N·(N-1)]`` (fully connected within each sample, see :func:`fully_connected_edges`)
    and ``batch [B·N]``.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    n = samples[0]["pos"].shape[0]
    if any(s["pos"].shape[0] != n for s in samples):
        raise ValueError("all samples must have the same number of particles")
    out = {key: torch.cat([s[key] for s in samples]) for key in samples[0]}
    device = out["pos"].device
    out["edge_index"] = fully_connected_edges(n, len(samples), device=device)
    out["batch"] = torch.arange(len(samples), device=device).repeat_interleave(n)
    return out
