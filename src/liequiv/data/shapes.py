"""Procedural 3D shapes sampled as point clouds, and the partial-to-partial registration data set built on them.

Nothing is downloaded: every shape is a primitive or the union of two, sampled uniformly on its surface.

Surfaces (:class:`Surface`) know their signed implicit function ``f(x)`` (negative inside, zero on the
surface, positive outside) and draw points uniformly on the zero set:

``Superquadric(axes, e1, e2)``: ``F(x) = (|x/a|^{2/e2} + |y/b|^{2/e2})^{e2/e1} + |z/c|^{2/e1} = 1``, with
    ``f = F^{e1/2} - 1``; the sphere (equal axes, ``e1 = e2 = 1``) and the ellipsoid (``e1 = e2 = 1``) are
    special cases. Sampled by radial projection of uniform directions (the surface is star-shaped about the
    origin) and rejection by the area element ``dA/dΩ = s³ |∇F| e1/2`` at the surface point ``s u``
    (Euler's relation ``∇F·x = 2F/e1`` for the degree-``2/e1`` homogeneous ``F``); the rejection bound is the
    largest weight of the candidate pool, so the density is uniform up to how well the pool finds the maximum.
``Box(half_extents)``: ``f = max_i |x_i| - a_i``. ``Cylinder(radius, half_height)`` with caps:
    ``f = max(ρ - r, |z| - h)``. ``Cone(radius, height)`` with its base disk at ``z = -height/4`` (the solid's
    centroid at the origin): ``f = max(ρ/r + (z - z_base)/height - 1, z_base - z)``.
    ``Torus(major, minor)``: ``f = sqrt((ρ - R)² + z²) - r``. These are sampled exactly (faces by area; the
    torus's tube angle by rejection on ``R + r cos θ``).
``Transformed(surface, rotation, offset, scale)``: the points ``scale · R p + offset``.
``Union(a, b)``: the boundary of the union of two solids, ``f = min(f_a, f_b)``: points of each surface that
    lie outside the other, drawn in proportion to the areas, so the result is uniform on that boundary.

Symmetry. Registration of a shape with a rotational symmetry is ill-posed (every symmetric pose fits equally):
every single primitive here has one (the sphere all of SO(3), the cylinder, cone and torus an axis, the box,
ellipsoid and superquadric the 180° turns about their axes). The data set therefore draws, by default, only
``"union"`` shapes: two primitives of random kinds, sizes and orientations, the second displaced from the first
along a random direction (two spheres are never paired, since their union keeps the axis through both
centres). A generic such union has no proper rotational symmetry (the symmetries of the pair must fix both
parts, and a random placement leaves only the identity), though a rare draw can come close to one. The single
kinds stay available (``kinds=("box",)`` ...) for studying ambiguity; their rotation errors are then not
meaningful without a symmetry-aware metric.

Unit scale: :func:`random_shape` moves the centroid of 4096 surface points to the origin and scales so that the
farthest of them lies at radius 1.

Registration samples (:func:`registration_sample`): the source is a partial view of the shape in its own
frame; the target is another partial view, of independently drawn surface points, moved by a random rigid
motion ``T = (t, q)`` that maps the source onto the target (``target ≈ T · source`` on their overlap).
Views: ``"halfspace"`` keeps the fraction ``visible`` of ``ceil(n_points / visible)`` surface points that lie
farthest along a random view direction (the partial views of RPM-Net), ``"hpr"`` keeps the points seen from
a camera at distance 3 along a random direction (Katz et al.'s hidden point removal; where fewer than
``n_points`` are visible, points are repeated to fill), ``"full"`` keeps all. Then each cloud gets Gaussian
noise of standard deviation ``noise`` per coordinate and a fraction ``outliers`` of its points is replaced by
points uniform in the cube ``[-1, 1]³`` of its frame (for the target, before the motion, so outliers lie
around the object). The rotation is Haar-uniform on SO(3) (``max_angle=None``) or about a uniform axis by an
angle uniform in ``[0, max_angle]`` degrees; the translation is uniform in ``[-max_translation,
max_translation]³``.

Splits: sample ``i`` of a split is drawn from its own generator seeded by ``(seed, split number, i)``, so
train, valid and test never share a stream and a sample does not depend on ``n_samples``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from liequiv.data.cache import cache_root, cached_arrays, params_hash
from liequiv.groups.so3 import quaternion_to_matrix

GENERATOR_VERSION = 1  # bump when a change alters the generated numbers (invalidates caches)
PRIMITIVES = ("sphere", "ellipsoid", "superquadric", "box", "cylinder", "cone", "torus")
KINDS = (*PRIMITIVES, "union")
VIEWS = ("halfspace", "hpr", "full")
SPLITS = ("train", "valid", "test")
NORMALIZATION_POINTS = 4096
CAMERA_DISTANCE = 3.0


def _check_points(x: np.ndarray, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape [..., 3], got {list(x.shape)}")
    return x


def _check_count(n: object, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {n!r}")
    return int(n)


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _disk(rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points in a disk: ``(x, y)`` arrays ``[n]``."""
    rho, phi = radius * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
    return rho * np.cos(phi), rho * np.sin(phi)


def _pieces(rng: np.random.Generator, n: int, areas: Sequence[float]) -> np.ndarray:
    """How many of ``n`` uniform surface points fall on each piece of a surface with piece ``areas``."""
    areas = np.asarray(areas, dtype=np.float64)
    return rng.multinomial(n, areas / areas.sum())


class Surface(ABC):
    """A closed surface: its signed implicit function and uniform samples on it."""

    @abstractmethod
    def _implicit(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def implicit(self, x: np.ndarray) -> np.ndarray:
        """``f(x)`` ``[...]`` for points ``x [..., 3]``: negative inside, zero on the surface, positive outside."""
        return self._implicit(_check_points(x))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points ``[n, 3]`` (float64) uniform on the surface, drawn from ``rng``."""
        return self._sample(_check_count(n, "n"), rng)


class Primitive(Surface):
    """A surface with a closed-form (or estimated) area, which :class:`Union` needs to mix two surfaces."""

    area: float


class Superquadric(Primitive):
    """The superquadric of semi-axes ``axes`` and exponents ``e1`` (latitude) and ``e2`` (longitude), in
    ``(0, 2)`` so that the surface is smooth enough for its area element; ``e1 = e2 = 1`` is an ellipsoid.
    ``area`` is the quadrature of ``dA/dΩ`` over the sphere of directions (128 Gauss-Legendre nodes in cos θ,
    256 in φ): exact to round-off for the ellipsoid, to about 1e-3 for the boxiest exponents."""

    def __init__(self, axes: Sequence[float], e1: float = 1.0, e2: float = 1.0) -> None:
        self.axes = np.asarray(axes, dtype=np.float64)
        if self.axes.shape != (3,) or not (self.axes > 0).all():
            raise ValueError(f"axes must be 3 positive numbers, got {axes!r}")
        if not (0 < e1 < 2 and 0 < e2 < 2):
            raise ValueError(f"exponents e1, e2 must lie in (0, 2), got {e1}, {e2}")
        self.e1, self.e2 = float(e1), float(e2)
        cos_theta, weights = np.polynomial.legendre.leggauss(128)  # ∫ dA/dΩ dΩ: Gauss-Legendre in cos θ, φ uniform
        phi = (np.arange(256) + 0.5) * (2 * np.pi / 256)
        sin_theta = np.sqrt(1 - cos_theta**2)[:, None]
        u = np.stack(np.broadcast_arrays(sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta[:, None]), -1)
        self.area = float((self._radial(u.reshape(-1, 3))[1].reshape(128, 256) * weights[:, None]).sum()
                          * (2 * np.pi / 256))

    def _inside_outside(self, x: np.ndarray) -> np.ndarray:
        ax = np.abs(x / self.axes)
        g = ax[..., 0] ** (2 / self.e2) + ax[..., 1] ** (2 / self.e2)
        return g ** (self.e2 / self.e1) + ax[..., 2] ** (2 / self.e1)

    def _radial(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Surface points ``s u`` along unit directions ``u [n, 3]`` and their area elements ``dA/dΩ [n]``."""
        s = self._inside_outside(u) ** (-self.e1 / 2)
        x = s[:, None] * u
        ax = np.abs(x / self.axes)
        g = ax[:, 0] ** (2 / self.e2) + ax[:, 1] ** (2 / self.e2)
        common = g ** (self.e2 / self.e1 - 1)
        grad = np.stack([common * ax[:, 0] ** (2 / self.e2 - 1) / self.axes[0],
                         common * ax[:, 1] ** (2 / self.e2 - 1) / self.axes[1],
                         ax[:, 2] ** (2 / self.e1 - 1) / self.axes[2]], -1) * (2 / self.e1)
        return x, s**3 * np.linalg.norm(grad, axis=-1) * self.e1 / 2

    def _implicit(self, x: np.ndarray) -> np.ndarray:
        return self._inside_outside(x) ** (self.e1 / 2) - 1

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        chunks, have = [], 0
        while have < n:
            x, weight = self._radial(_unit_vectors(rng, 4 * max(n - have, 64)))
            keep = rng.random(len(weight)) * weight.max() < weight
            chunks.append(x[keep])
            have += int(keep.sum())
        return np.concatenate(chunks)[:n]


class Box(Primitive):
    """The surface of the box ``|x_i| ≤ a_i`` (``half_extents`` a)."""

    def __init__(self, half_extents: Sequence[float]) -> None:
        self.half = np.asarray(half_extents, dtype=np.float64)
        if self.half.shape != (3,) or not (self.half > 0).all():
            raise ValueError(f"half_extents must be 3 positive numbers, got {half_extents!r}")
        a = self.half
        self.faces = 4 * np.array([a[1] * a[2], a[0] * a[2], a[0] * a[1]])  # one face normal to each axis
        self.area = 2 * self.faces.sum()

    def _implicit(self, x: np.ndarray) -> np.ndarray:
        return (np.abs(x) - self.half).max(-1)

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        x = rng.uniform(-self.half, self.half, (n, 3))
        axis = np.repeat(np.arange(3), _pieces(rng, n, self.faces))
        rng.shuffle(axis)
        x[np.arange(n), axis] = self.half[axis] * rng.choice([-1.0, 1.0], n)
        return x


class Cylinder(Primitive):
    """The closed cylinder ``ρ ≤ radius, |z| ≤ half_height`` (lateral surface and two caps)."""

    def __init__(self, radius: float, half_height: float) -> None:
        if not (radius > 0 and half_height > 0):
            raise ValueError(f"radius and half_height must be positive, got {radius}, {half_height}")
        self.radius, self.half_height = float(radius), float(half_height)
        self.parts = np.array([4 * np.pi * radius * half_height, 2 * np.pi * radius**2])  # lateral, caps
        self.area = self.parts.sum()

    def _implicit(self, x: np.ndarray) -> np.ndarray:
        rho = np.hypot(x[..., 0], x[..., 1])
        return np.maximum(rho - self.radius, np.abs(x[..., 2]) - self.half_height)

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        n_side, n_caps = _pieces(rng, n, self.parts)
        phi = rng.uniform(0, 2 * np.pi, n_side)
        side = np.stack([self.radius * np.cos(phi), self.radius * np.sin(phi),
                         rng.uniform(-self.half_height, self.half_height, n_side)], -1)
        cx, cy = _disk(rng, n_caps, self.radius)
        caps = np.stack([cx, cy, self.half_height * rng.choice([-1.0, 1.0], n_caps)], -1)
        return rng.permutation(np.concatenate([side, caps]))


class Cone(Primitive):
    """The closed cone of base ``radius`` and ``height``, base disk at ``z = -height/4``, apex at ``3 height/4``."""

    def __init__(self, radius: float, height: float) -> None:
        if not (radius > 0 and height > 0):
            raise ValueError(f"radius and height must be positive, got {radius}, {height}")
        self.radius, self.height = float(radius), float(height)
        self.base = -self.height / 4
        self.parts = np.array([np.pi * radius * math.hypot(radius, height), np.pi * radius**2])  # lateral, base
        self.area = self.parts.sum()

    def _implicit(self, x: np.ndarray) -> np.ndarray:
        rho = np.hypot(x[..., 0], x[..., 1])
        return np.maximum(rho / self.radius + (x[..., 2] - self.base) / self.height - 1, self.base - x[..., 2])

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        n_side, n_base = _pieces(rng, n, self.parts)
        d = np.sqrt(rng.random(n_side))  # distance from the apex, as a fraction: the area grows like d
        phi = rng.uniform(0, 2 * np.pi, n_side)
        side = np.stack([self.radius * d * np.cos(phi), self.radius * d * np.sin(phi),
                         self.base + self.height * (1 - d)], -1)
        bx, by = _disk(rng, n_base, self.radius)
        return rng.permutation(np.concatenate([side, np.stack([bx, by, np.full(n_base, self.base)], -1)]))


class Torus(Primitive):
    """The torus about the z axis with tube centre radius ``major`` and tube radius ``minor < major``."""

    def __init__(self, major: float, minor: float) -> None:
        if not 0 < minor < major:
            raise ValueError(f"need 0 < minor < major, got major={major}, minor={minor}")
        self.major, self.minor = float(major), float(minor)
        self.area = 4 * np.pi**2 * major * minor

    def _implicit(self, x: np.ndarray) -> np.ndarray:
        return np.hypot(np.hypot(x[..., 0], x[..., 1]) - self.major, x[..., 2]) - self.minor

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        chunks, have = [], 0
        while have < n:  # the area element is (R + r cos θ) dθ dφ: reject θ with probability ∝ its deficit
            theta = rng.uniform(0, 2 * np.pi, 2 * max(n - have, 64))
            keep = rng.random(len(theta)) * (self.major + self.minor) < self.major + self.minor * np.cos(theta)
            chunks.append(theta[keep])
            have += int(keep.sum())
        theta = np.concatenate(chunks)[:n]
        phi = rng.uniform(0, 2 * np.pi, n)
        rho = self.major + self.minor * np.cos(theta)
        return np.stack([rho * np.cos(phi), rho * np.sin(phi), self.minor * np.sin(theta)], -1)


class Transformed(Primitive):
    """``surface`` moved to ``scale · R p + offset`` (``rotation`` R ``[3, 3]``, proper; ``offset [3]``); its implicit
    function is ``scale · f(Rᵀ(x - offset) / scale)``, so lengths stay lengths. ``area`` is NaN for a surface
    without one (a :class:`Union`)."""

    def __init__(self, surface: Surface, rotation: np.ndarray | None = None, offset: Sequence[float] = (0, 0, 0),
                 scale: float = 1.0) -> None:
        self.surface = surface
        self.rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
        self.offset = np.asarray(offset, dtype=np.float64)
        if self.rotation.shape != (3, 3) or self.offset.shape != (3,) or not scale > 0:
            raise ValueError("rotation must be [3, 3], offset [3] and scale positive")
        self.scale = float(scale)
        self.area = getattr(surface, "area", math.nan) * self.scale**2

    def _implicit(self, x: np.ndarray) -> np.ndarray:
        return self.scale * self.surface._implicit(((x - self.offset) / self.scale) @ self.rotation)

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.scale * self.surface._sample(n, rng) @ self.rotation.T + self.offset


class Union(Surface):
    """The boundary of the union of the solids bounded by primitives ``a`` and ``b``."""

    def __init__(self, a: Primitive, b: Primitive) -> None:
        self.parts = (a, b)

    def _implicit(self, x: np.ndarray) -> np.ndarray:
        return np.minimum(self.parts[0]._implicit(x), self.parts[1]._implicit(x))

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        a, b = self.parts
        chunks, have = [], 0
        while have < n:
            n_a, n_b = _pieces(rng, 2 * max(n - have, 64), [a.area, b.area])
            xa, xb = a._sample(n_a, rng), b._sample(n_b, rng)
            found = np.concatenate([xa[b._implicit(xa) > 0], xb[a._implicit(xb) > 0]])
            chunks.append(found)
            have += len(found)
        return rng.permutation(np.concatenate(chunks))[:n]


def random_rotation(rng: np.random.Generator, max_angle: float | None = None) -> np.ndarray:
    """A unit quaternion ``(x, y, z, w)`` ``[4]`` with ``w ≥ 0``: Haar-uniform (``max_angle=None``) or about a
    uniform axis by an angle uniform in ``[0, max_angle]`` degrees."""
    if max_angle is None:
        q = rng.standard_normal(4)
        q /= np.linalg.norm(q)
    else:
        half = np.deg2rad(rng.uniform(0, max_angle)) / 2
        q = np.concatenate([np.sin(half) * _unit_vectors(rng, 1)[0], [np.cos(half)]])
    return q if q[3] >= 0 else -q


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of unit quaternions ``(x, y, z, w)`` ``[..., 4]``."""
    return quaternion_to_matrix(torch.as_tensor(np.asarray(q, dtype=np.float64))).numpy()


def _random_primitive(kind: str, rng: np.random.Generator) -> Primitive:
    if kind == "sphere":
        return Superquadric((1.0, 1.0, 1.0))
    if kind == "ellipsoid":
        return Superquadric(rng.uniform(0.4, 1.0, 3))
    if kind == "superquadric":
        return Superquadric(rng.uniform(0.4, 1.0, 3), *rng.uniform(0.3, 1.7, 2))
    if kind == "box":
        return Box(rng.uniform(0.3, 1.0, 3))
    if kind == "cylinder":
        return Cylinder(rng.uniform(0.3, 0.8), rng.uniform(0.3, 1.0))
    if kind == "cone":
        return Cone(rng.uniform(0.4, 1.0), rng.uniform(0.8, 2.0))
    major = rng.uniform(0.6, 1.0)
    return Torus(major, rng.uniform(0.15, 0.5) * major)


def random_shape(rng: np.random.Generator, kinds: Sequence[str] = ("union",)) -> Transformed:
    """A shape of a kind drawn uniformly from ``kinds`` (see :data:`KINDS`), normalized to unit scale.

    A ``"union"`` joins a primitive at the origin and one scaled by a factor in ``[0.4, 0.8]``, displaced by
    ``[0.6, 1.0]`` along a random direction, each randomly rotated; its kinds are drawn from
    :data:`PRIMITIVES`, never two spheres.
    """
    kinds = _check_kinds(kinds)
    kind = kinds[rng.integers(len(kinds))]
    if kind == "union":
        first, second = rng.choice(PRIMITIVES, 2)
        while first == second == "sphere":
            first, second = rng.choice(PRIMITIVES, 2)
        a = Transformed(_random_primitive(str(first), rng), rotation_matrix(random_rotation(rng)))
        b = Transformed(_random_primitive(str(second), rng), rotation_matrix(random_rotation(rng)),
                        rng.uniform(0.6, 1.0) * _unit_vectors(rng, 1)[0], rng.uniform(0.4, 0.8))
        shape: Surface = Union(a, b)
    else:
        shape = _random_primitive(kind, rng)
    points = shape._sample(NORMALIZATION_POINTS, rng)
    center = points.mean(0)
    radius = np.linalg.norm(points - center, axis=-1).max()
    return Transformed(shape, offset=-center / radius, scale=1 / radius)


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty sequence of {KINDS}, got {kinds!r}")
    return kinds


# ----------------------------------------------------------------------------------------------------------
# Partial views and registration samples.

def hidden_point_removal(points: np.ndarray, camera: np.ndarray, gamma: float = 2.0) -> np.ndarray:
    """Indices of the ``points [n, 3]`` visible from ``camera [3]`` (Katz, Tal and Basri 2007): spherical flipping
    about the camera with radius ``10^gamma`` times the farthest point, then the convex hull."""
    from scipy.spatial import ConvexHull

    p = points - camera
    norm = np.linalg.norm(p, axis=-1, keepdims=True)
    flipped = p + 2 * (10**gamma * norm.max() - norm) * p / norm
    hull = ConvexHull(np.concatenate([flipped, np.zeros((1, 3))]))
    return hull.vertices[hull.vertices < len(points)]


def view_pool_size(n_points: int, view: str = "halfspace", visible: float = 0.7) -> int:
    """How many surface points :func:`partial_view` draws to keep ``n_points`` of them."""
    return {"full": n_points, "halfspace": math.ceil(n_points / visible), "hpr": 4 * n_points}[view]


def partial_view(shape: Surface, n_points: int, rng: np.random.Generator, view: str = "halfspace",
                 visible: float = 0.7, pool: np.ndarray | None = None) -> np.ndarray:
    """``n_points`` surface points ``[n_points, 3]`` of ``shape`` seen from a random direction (see the module),
    cut from ``pool`` (``[view_pool_size(...), 3]`` surface points) if given, else from a fresh sample."""
    points = shape.sample(view_pool_size(n_points, view, visible), rng) if pool is None else pool
    if view == "full":
        return points if pool is None else points[rng.permutation(len(points))]
    direction = _unit_vectors(rng, 1)[0]
    if view == "halfspace":
        return points[np.argsort(-(points @ direction), kind="stable")[:n_points]]
    seen = points[hidden_point_removal(points, CAMERA_DISTANCE * direction)]
    pick = rng.choice(len(seen), n_points, replace=len(seen) < n_points)
    return seen[pick]


def _corrupt(points: np.ndarray, rng: np.random.Generator, noise: float, outliers: float
             ) -> tuple[np.ndarray, np.ndarray]:
    points = points + noise * rng.standard_normal(points.shape)
    inlier = np.ones(len(points), dtype=bool)
    inlier[rng.permutation(len(points))[: round(outliers * len(points))]] = False
    points[~inlier] = rng.uniform(-1, 1, (int((~inlier).sum()), 3))
    return points, inlier


@dataclass(frozen=True)
class RegistrationConfig:
    """Parameters of the registration generator (see the module docstring); every field enters the cache key.

    ``noise`` is the standard deviation of the Gaussian noise per coordinate and ``max_translation`` the bound of
    each translation component, both in units of the shape's scale (radius 1); ``max_angle`` is in degrees
    (``None``: uniform on SO(3)); ``outliers`` is the fraction of each cloud's points replaced by outliers;
    ``visible`` the fraction of a half-space view that is kept; ``shared_points`` cuts both views from one draw of
    surface points (the protocol of DCP and RPM-Net: the clouds differ by view, noise and outliers, not by
    sampling) instead of two independent draws.
    """

    n_points: int = 1024
    noise: float = 0.01
    outliers: float = 0.0
    max_angle: float | None = None
    max_translation: float = 0.5
    view: str = "halfspace"
    visible: float = 0.7
    kinds: tuple[str, ...] = ("union",)
    shared_points: bool = False
    seed: int = 0
    store_dtype: str = "float32"

    def __post_init__(self) -> None:
        if isinstance(self.n_points, bool) or not isinstance(self.n_points, int) or self.n_points < 3:
            raise ValueError(f"n_points must be an integer >= 3, got {self.n_points!r}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        if not 0 <= self.outliers < 1:
            raise ValueError(f"outliers must lie in [0, 1), got {self.outliers!r}")
        if self.max_angle is not None and not 0 < self.max_angle <= 180:
            raise ValueError(f"max_angle must lie in (0, 180] degrees or be None, got {self.max_angle!r}")
        if not self.max_translation >= 0:
            raise ValueError(f"max_translation must be >= 0, got {self.max_translation!r}")
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")
        if not 0 < self.visible <= 1:
            raise ValueError(f"visible must lie in (0, 1], got {self.visible!r}")
        object.__setattr__(self, "kinds", _check_kinds(self.kinds))
        if self.store_dtype not in ("float32", "float64"):
            raise ValueError(f"store_dtype must be 'float32' or 'float64', got {self.store_dtype!r}")

    def key(self) -> str:
        """Hash of the generator's parameters, used in cache file names."""
        return params_hash({**dataclasses.asdict(self), "version": GENERATOR_VERSION})


def registration_sample(shape: Surface, rng: np.random.Generator, config: RegistrationConfig
                        ) -> dict[str, np.ndarray]:
    """One registration pair of ``shape`` (float64): ``source``, ``target [n, 3]``, ``motion [7]`` (the SE(3)
    parameters ``(t, q)``, xyzw, of the motion taking source to target) and ``source_inlier``,
    ``target_inlier [n]`` (False where a point was replaced by an outlier)."""
    c = config
    pool = shape.sample(view_pool_size(c.n_points, c.view, c.visible), rng) if c.shared_points else None
    source, source_inlier = _corrupt(partial_view(shape, c.n_points, rng, c.view, c.visible, pool), rng, c.noise,
                                     c.outliers)
    target, target_inlier = _corrupt(partial_view(shape, c.n_points, rng, c.view, c.visible, pool), rng, c.noise,
                                     c.outliers)
    q = random_rotation(rng, c.max_angle)
    t = rng.uniform(-c.max_translation, c.max_translation, 3)
    return {"source": source, "target": target @ rotation_matrix(q).T + t, "motion": np.concatenate([t, q]),
            "source_inlier": source_inlier, "target_inlier": target_inlier}


def split_name(split: str) -> str:
    """The canonical split name (``"val"`` and ``"validation"`` are ``"valid"``)."""
    split = {"val": "valid", "validation": "valid"}.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (or 'val'), got {split!r}")
    return split


def sample_generator(config: RegistrationConfig, split: str, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``split``: seeded by ``(seed, split number, index)``."""
    return np.random.default_rng([config.seed, SPLITS.index(split_name(split)), index])


def generate_split(config: RegistrationConfig, split: str, n_samples: int) -> dict[str, np.ndarray]:
    """Samples ``0 .. n_samples-1`` of ``split``, stacked: ``source``, ``target [S, n, 3]``, ``motion [S, 7]``,
    ``source_inlier``, ``target_inlier [S, n]``."""
    samples = []
    for i in range(n_samples):
        rng = sample_generator(config, split, i)
        samples.append(registration_sample(random_shape(rng, config.kinds), rng, config))
    n = config.n_points
    shapes = {"source": (n, 3), "target": (n, 3), "motion": (7,), "source_inlier": (n,), "target_inlier": (n,)}
    out = {key: np.stack([s[key] for s in samples]) if samples else np.zeros((0, *shape))
           for key, shape in shapes.items()}
    dtype = np.dtype(config.store_dtype)
    return {key: value.astype(dtype) if key in ("source", "target", "motion") else value.astype(bool)
            for key, value in out.items()}


def load_registration_split(split: str, n_samples: int, config: RegistrationConfig | None = None, *,
                            cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The arrays of :func:`generate_split`, from ``<cache>/shapes/<split>-<n>-<hash>.npz`` or generated and cached
    there (``cache_dir``, ``$LIEQUIV_CACHE`` or ``~/.cache/liequiv``)."""
    split = split_name(split)
    n_samples = _check_count(n_samples, "n_samples")
    config = RegistrationConfig() if config is None else config
    params = {**dataclasses.asdict(config), "version": GENERATOR_VERSION, "split": split, "n_samples": n_samples}
    path = cache_root(cache_dir) / "shapes" / f"registration-{split}-{n_samples}-{config.key()}.npz"
    return cached_arrays(path, params, lambda: generate_split(config, split, n_samples),
                         ("source", "target", "motion", "source_inlier", "target_inlier"),
                         what=f"{n_samples} registration pairs ({split})")


class RegistrationDataset(Dataset):
    """Pairs of partial point clouds of procedural shapes and the rigid motion between them (see the module).

    Each sample is a dict: ``source``, ``target [n_points, 3]``, ``motion [7]`` (SE(3) parameters ``(t, q)``
    with ``target ≈ SE3(motion).act(source)``), ``source_inlier``, ``target_inlier [n_points]`` (bool). The
    keyword arguments are the fields of :class:`RegistrationConfig`; batch with :func:`collate_registration`.
    """

    def __init__(self, split: str = "train", n_samples: int = 1000, n_points: int = 1024, noise: float = 0.01,
                 outliers: float = 0.0, max_angle: float | None = None, *, cache_dir: str | os.PathLike | None = None,
                 dtype: torch.dtype = torch.float32, **config: object) -> None:
        self.split = split_name(split)
        self.config = RegistrationConfig(n_points=n_points, noise=noise, outliers=outliers, max_angle=max_angle,
                                         **config)
        data = load_registration_split(self.split, n_samples, self.config, cache_dir=cache_dir)
        self.source, self.target, self.motion = (torch.from_numpy(data[key]).to(dtype)
                                                 for key in ("source", "target", "motion"))
        self.source_inlier = torch.from_numpy(data["source_inlier"])
        self.target_inlier = torch.from_numpy(data["target_inlier"])

    def __len__(self) -> int:
        return self.source.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"source": self.source[i], "target": self.target[i], "motion": self.motion[i],
                "source_inlier": self.source_inlier[i], "target_inlier": self.target_inlier[i]}


def collate_registration(samples: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Stack samples: ``source``, ``target [B, n, 3]``, ``motion [B, 7]`` (source -> target), inlier masks
    ``[B, n]``."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    shape = samples[0]["source"].shape
    if any(s["source"].shape != shape or s["target"].shape != shape for s in samples):
        raise ValueError(f"all clouds must have the shape of the first source, {list(shape)}")
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
