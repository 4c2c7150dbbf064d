"""Procedural shapes and registration pairs: points on their surfaces, uniform by area (closed forms and quadrature),
unit scale, the ground-truth motion, views, noise and outliers, determinism and disjoint splits, cache, collate,
bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from liequiv.data.shapes import (
    KINDS,
    PRIMITIVES,
    Box,
    Cone,
    Cylinder,
    RegistrationConfig,
    RegistrationDataset,
    Superquadric,
    Torus,
    Transformed,
    Union,
    collate_registration,
    generate_split,
    hidden_point_removal,
    load_registration_split,
    partial_view,
    random_rotation,
    random_shape,
    registration_sample,
    rotation_matrix,
    sample_generator,
)
from liequiv.groups import SE3

CLEAN = RegistrationConfig(n_points=256, noise=0.0, store_dtype="float64")


def _binomial_ok(count: int, n: int, p: float) -> bool:
    """``count`` successes of ``n`` within 5 standard deviations of probability ``p``."""
    return abs(count - n * p) < 5 * math.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------------------------------------------------
# Surfaces

@pytest.mark.parametrize("kind", KINDS)
def test_points_lie_on_the_surface_at_unit_scale(kind: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(3):
        shape = random_shape(rng, (kind,))
        x = shape.sample(2000, rng)
        assert x.shape == (2000, 3)
        assert np.abs(shape.implicit(x)).max() < 1e-6
        assert np.linalg.norm(x, axis=-1).max() < 1.05 and np.linalg.norm(x.mean(0)) < 0.05


def test_implicit_functions_against_closed_forms() -> None:
    points = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    np.testing.assert_allclose(Superquadric((1.0, 1.0, 1.0)).implicit(points), [-1.0, 1.0, -0.5], atol=1e-15)
    np.testing.assert_allclose(Box((1.0, 2.0, 3.0)).implicit(points), [-1.0, 1.0, -0.5], atol=1e-15)
    np.testing.assert_allclose(Torus(1.0, 0.25).implicit(points), [0.75, 0.75, 0.25], atol=1e-15)
    assert Cylinder(0.5, 1.0).implicit(np.array([0.0, 0.0, 1.0])) == 0.0
    cone = Cone(1.0, 2.0)  # base at z = -0.5, apex at 1.5
    np.testing.assert_allclose(cone.implicit(np.array([[0.0, 0.0, 1.5], [1.0, 0.0, -0.5], [0.0, 0.0, 0.0]])),
                               [0.0, 0.0, -0.5], atol=1e-15)
    rounded = Superquadric((1.0, 1.0, 1.0), 0.5, 0.5)  # F = x⁴ + y⁴ + z⁴, f = F^(1/4) - 1
    np.testing.assert_allclose(rounded.implicit(np.array([[1.0, 1.0, 1.0], [2**-0.25, -(2**-0.25), 0.0]])),
                               [3**0.25 - 1, 0.0], atol=1e-15)


def test_closed_form_areas() -> None:
    assert Superquadric((1.0, 1.0, 1.0)).area == pytest.approx(4 * math.pi, rel=1e-12)
    a, c = 0.5, 1.0  # prolate spheroid: 2π a² (1 + c asin(e) / (a e)), e² = 1 - a²/c²
    e = math.sqrt(1 - a**2 / c**2)
    assert Superquadric((a, a, c)).area == pytest.approx(2 * math.pi * a**2 * (1 + c * math.asin(e) / (a * e)),
                                                         rel=5e-3)
    assert Box((1.0, 2.0, 3.0)).area == pytest.approx(8 * (2 + 3 + 6))
    assert Cylinder(0.5, 2.0).area == pytest.approx(2 * math.pi * 0.5 * 4 + 2 * math.pi * 0.25)
    assert Cone(3.0, 4.0).area == pytest.approx(math.pi * 9 + math.pi * 3 * 5)
    assert Torus(1.0, 0.5).area == pytest.approx(2 * math.pi**2)


def test_superquadric_sampling_is_uniform_by_area() -> None:
    """Fraction of a spheroid's points in the zone z > 0.5 against the zone's area by quadrature."""
    a, c = 0.5, 1.0

    def element(z: float) -> float:  # dA/dz = 2π ρ sqrt(1 + ρ'²) with ρ² = a² (1 - z²/c²), ρ ρ' = -a² z/c²
        return 2 * math.pi * math.sqrt(a**2 * (1 - (z / c) ** 2) + (a**2 * z / c**2) ** 2)

    zone, total = quad(element, 0.5, c)[0], 2 * quad(element, 0, c)[0]
    shape = Superquadric((a, a, c))
    n = 200_000
    x = shape.sample(n, np.random.default_rng(0))
    assert _binomial_ok(int((x[:, 2] > 0.5).sum()), n, zone / total)
    assert shape.area == pytest.approx(total, rel=2e-3)


@pytest.mark.parametrize(("surface", "region", "probability"), [
    (Box((1.0, 2.0, 3.0)), lambda x: x[:, 0] == 1.0, 24 / 88),  # one face of area 4 · 2 · 3
    (Cylinder(0.5, 2.0), lambda x: np.abs(x[:, 2]) == 2.0, 0.5 / (0.5 + 4.0)),
    (Cone(3.0, 4.0), lambda x: x[:, 2] == -1.0, 9 / (9 + 15)),
    (Cone(3.0, 4.0), lambda x: x[:, 2] > 1.0, 15 / (9 + 15) / 4),  # the upper half of the side: a quarter of it
    (Torus(1.0, 0.5), lambda x: np.hypot(x[:, 0], x[:, 1]) > 1.0, (math.pi + 1.0) / (2 * math.pi)),
    (Union(Superquadric((1.0, 1.0, 1.0)), Transformed(Superquadric((1.0, 1.0, 1.0)), offset=(0, 0, 1), scale=0.5)),
     lambda x: np.linalg.norm(x - [0, 0, 1], axis=-1) < 0.5 + 1e-9, 1 / 7),
])
def test_sampling_is_uniform_by_area(surface, region, probability: float) -> None:
    n = 100_000
    x = surface.sample(n, np.random.default_rng(1))
    assert x.shape == (n, 3) and np.abs(surface.implicit(x)).max() < 1e-12
    assert _binomial_ok(int(region(x).sum()), n, probability)


def test_union_is_the_boundary_of_the_union() -> None:
    """No point of a union lies inside either solid; both parts are present."""
    rng = np.random.default_rng(2)
    shape = random_shape(rng).surface
    a, b = shape.parts
    x = shape.sample(5000, rng)
    fa, fb = a.implicit(x), b.implicit(x)
    assert (fa > -1e-12).all() and (fb > -1e-12).all()
    assert (np.abs(fa) < 1e-12).any() and (np.abs(fb) < 1e-12).any()


def test_transformed_moves_points_and_function_together() -> None:
    rng = np.random.default_rng(4)
    rotation = rotation_matrix(random_rotation(rng))
    box = Box((0.2, 0.3, 0.4))
    moved = Transformed(box, rotation, (1.0, 2.0, 3.0), 2.0)
    p = box.sample(100, rng)
    np.testing.assert_allclose(moved.implicit(2.0 * p @ rotation.T + [1.0, 2.0, 3.0]), 0.0, atol=1e-12)
    assert moved.area == pytest.approx(4 * box.area)
    assert moved.implicit(np.array([1.0, 2.0, 3.0])) == pytest.approx(-0.4)  # the centre, 0.2 · 2 inside


def test_random_rotation_angles() -> None:
    rng = np.random.default_rng(5)
    q = np.stack([random_rotation(rng, 30.0) for _ in range(2000)])
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    angles = np.rad2deg(2 * np.arccos(q[:, 3]))
    assert angles.max() <= 30.0 + 1e-9 and angles.max() > 29.0 and angles.mean() == pytest.approx(15.0, abs=1.0)
    haar = np.stack([random_rotation(rng) for _ in range(4000)])
    haar_angles = 2 * np.arccos(haar[:, 3])  # Haar density of the angle: (1 - cos θ)/π on [0, π]
    assert _binomial_ok(int((haar_angles < math.pi / 2).sum()), 4000, (math.pi / 2 - 1) / math.pi)


def test_hidden_point_removal_keeps_the_near_side_of_a_sphere() -> None:
    sphere = Superquadric((1.0, 1.0, 1.0))
    x = sphere.sample(4000, np.random.default_rng(6))
    seen = x[hidden_point_removal(x, np.array([0.0, 0.0, 3.0]))]
    visible = x[:, 2] > 1 / 3  # the tangent cone from distance 3 touches the unit sphere at z = 1/3
    assert len(seen) > 0.9 * visible.sum()
    assert (seen[:, 2] > 1 / 3 - 0.1).all()  # hidden point removal is approximate near the silhouette


# ---------------------------------------------------------------------------------------------------------
# Registration pairs

@pytest.mark.parametrize("view", ["halfspace", "hpr", "full"])
def test_the_motion_maps_source_surface_onto_the_target(view: str) -> None:
    config = RegistrationConfig(**{**CLEAN.__dict__, "view": view})
    rng = np.random.default_rng(7)
    shape = random_shape(rng)
    pair = registration_sample(shape, rng, config)
    motion = SE3(torch.from_numpy(pair["motion"]))
    source = torch.from_numpy(pair["source"])
    assert np.abs(shape.implicit(pair["source"])).max() < 1e-6  # the source is in the shape's frame
    back = motion.inverse().act(torch.from_numpy(pair["target"])).numpy()
    assert np.abs(shape.implicit(back)).max() < 1e-6  # the target is the moved shape
    assert np.abs(shape.implicit(pair["target"])).max() > 1e-2  # ... and not the unmoved one
    # and the moved source lies on the target's (moved) surface
    moved = motion.act(source).numpy()
    rotation, t = rotation_matrix(pair["motion"][3:]), pair["motion"][:3]
    assert np.abs(shape.implicit((moved - t) @ rotation)).max() < 1e-6


@pytest.mark.parametrize("view", ["halfspace", "full"])
def test_shared_points_cut_both_views_from_one_draw(view: str) -> None:
    """With ``shared_points`` the target (moved back) consists of the same surface points as the source where the
    views overlap (all of them for full views, in another order); independent draws share none."""
    matches = {}
    for shared in (True, False):
        config = RegistrationConfig(**{**CLEAN.__dict__, "view": view, "shared_points": shared})
        rng = np.random.default_rng(11)
        pair = registration_sample(random_shape(rng), rng, config)
        back = SE3(torch.from_numpy(pair["motion"])).inverse().act(torch.from_numpy(pair["target"])).numpy()
        distance = np.linalg.norm(pair["source"][:, None] - back[None], axis=-1).min(1)
        matches[shared] = (distance < 1e-9).mean()
        if shared and view == "full":
            assert matches[shared] == 1.0
            assert not np.allclose(back, pair["source"])  # permuted
    assert matches[False] == 0.0
    assert 0.3 < matches[True] <= 1.0


def test_halfspace_view_of_a_sphere_is_a_hemisphere() -> None:
    """Keeping half of a sphere's points along a direction d leaves the hemisphere x·d ≥ 0, centroid d/2."""
    x = partial_view(Superquadric((1.0, 1.0, 1.0)), 4000, np.random.default_rng(8), "halfspace", visible=0.5)
    assert x.shape == (4000, 3)
    centroid = x.mean(0)
    assert np.linalg.norm(centroid) == pytest.approx(0.5, abs=0.02)
    assert (x @ (centroid / np.linalg.norm(centroid)) > -0.1).all()  # up to the error of the centroid


def test_noise_and_outliers() -> None:
    config = RegistrationConfig(n_points=1000, noise=0.02, outliers=0.25, max_translation=0.0, store_dtype="float64")
    rng = np.random.default_rng(9)
    shape = random_shape(rng)
    pair = registration_sample(shape, rng, config)
    for key in ("source", "target"):
        inlier = pair[f"{key}_inlier"]
        assert inlier.shape == (1000,) and (~inlier).sum() == 250
        points = pair[key] if key == "source" else SE3(torch.from_numpy(pair["motion"])).inverse().act(
            torch.from_numpy(pair[key])).numpy()
        assert (np.abs(points[~inlier]) <= 1).all()
        assert np.median(np.abs(shape.implicit(points[~inlier]))) > 0.1  # uniform in the cube, off the surface
        residual = shape.implicit(points[inlier])
        assert 0.005 < np.abs(residual).mean() < 0.04  # about noise · sqrt(2/π) off the surface


def test_dataset_deterministic_splits_differ_and_cached(tmp_path, capsys) -> None:
    data = RegistrationDataset("train", 6, 64, noise=0.01, outliers=0.1, max_angle=45.0, cache_dir=tmp_path)
    assert len(data) == 6 and data[0]["source"].shape == (64, 3) and data[0]["motion"].shape == (7,)
    assert data[0]["source"].dtype == torch.float32 and data[0]["source_inlier"].dtype == torch.bool
    capsys.readouterr()
    again = RegistrationDataset("train", 6, 64, noise=0.01, outliers=0.1, max_angle=45.0, cache_dir=tmp_path)
    assert "generating" not in capsys.readouterr().err
    fresh = RegistrationDataset("train", 6, 64, noise=0.01, outliers=0.1, max_angle=45.0,
                                cache_dir=tmp_path / "other")
    for key in ("source", "target", "motion", "target_inlier"):
        assert torch.equal(data.__dict__[key], again.__dict__[key]) and torch.equal(data.__dict__[key],
                                                                                     fresh.__dict__[key])
    longer = RegistrationDataset("train", 8, 64, noise=0.01, outliers=0.1, max_angle=45.0, cache_dir=tmp_path)
    assert torch.equal(longer.source[:6], data.source)  # a sample does not depend on n_samples
    for split in ("valid", "test"):
        other = RegistrationDataset(split, 6, 64, noise=0.01, outliers=0.1, max_angle=45.0, cache_dir=tmp_path)
        assert not torch.isclose(other.source, data.source).all(-1).any()  # no point shared with train
        assert not torch.isclose(other.motion, data.motion).all(-1).any()
    seeded = RegistrationDataset("train", 6, 64, noise=0.01, outliers=0.1, max_angle=45.0, cache_dir=tmp_path,
                                 seed=1)
    assert not torch.equal(seeded.source, data.source)
    angles = torch.rad2deg(2 * torch.acos(data.motion[:, 6].abs().clamp(max=1)))
    assert (angles <= 45.0 + 1e-3).all()


def test_dataset_matches_the_sample_generators(tmp_path) -> None:
    data = generate_split(CLEAN, "valid", 3)
    rng = sample_generator(CLEAN, "val", 2)
    shape = random_shape(rng, CLEAN.kinds)
    pair = registration_sample(shape, rng, CLEAN)
    for key in pair:
        np.testing.assert_array_equal(data[key][2], pair[key])
    assert data["source"].dtype == np.float64
    loaded = load_registration_split("valid", 3, CLEAN, cache_dir=tmp_path)
    np.testing.assert_array_equal(loaded["target"], data["target"])
    assert generate_split(CLEAN, "test", 0)["source"].shape == (0, 256, 3)


def test_collate() -> None:
    data = generate_split(RegistrationConfig(n_points=16), "train", 3)
    samples = [{key: torch.from_numpy(value[i]) for key, value in data.items()} for i in range(3)]
    batch = collate_registration(samples)
    assert batch["source"].shape == (3, 16, 3) and batch["target"].shape == (3, 16, 3)
    assert batch["motion"].shape == (3, 7) and batch["source_inlier"].shape == (3, 16)
    assert torch.equal(batch["motion"][1], samples[1]["motion"])
    with pytest.raises(ValueError, match="empty"):
        collate_registration([])
    with pytest.raises(ValueError, match="shape"):
        collate_registration([samples[0], {**samples[1], "source": samples[1]["source"][:8]}])


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"n_points": 2}, "n_points"), ({"n_points": 10.0}, "n_points"), ({"noise": -0.1}, "noise"),
    ({"outliers": 1.0}, "outliers"), ({"outliers": -0.1}, "outliers"), ({"max_angle": 0.0}, "max_angle"),
    ({"max_angle": 200.0}, "max_angle"), ({"max_translation": -1.0}, "max_translation"),
    ({"view": "top"}, "view"), ({"visible": 0.0}, "visible"), ({"kinds": ("blob",)}, "kinds"),
    ({"kinds": ()}, "kinds"), ({"store_dtype": "int8"}, "store_dtype"),
])
def test_bad_configuration_names_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RegistrationConfig(**kwargs)


def test_bad_input_names_the_argument(tmp_path) -> None:
    with pytest.raises(ValueError, match="split"):
        RegistrationDataset("dev", 2, 16, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="n_samples"):
        RegistrationDataset("train", -1, 16, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="n_points"):
        RegistrationDataset("train", 2, 2, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"x must have shape \[..., 3\]"):
        Box((1.0, 1.0, 1.0)).implicit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="n must be"):
        Box((1.0, 1.0, 1.0)).sample(-1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="exponents"):
        Superquadric((1.0, 1.0, 1.0), 2.5, 1.0)
    with pytest.raises(ValueError, match="minor"):
        Torus(0.5, 1.0)
    assert set(PRIMITIVES) < set(KINDS)
