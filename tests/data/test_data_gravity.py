"""Charged particles under gravity above a floor: free fall in closed form, energy between bounces, the floor, the
symmetry of the dynamics (rotations about the vertical, not tilts), determinism and the cache, the data set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from liequiv.data import gravity
from liequiv.data.gravity import (
    GravityConfig,
    GravityDataset,
    accelerations,
    collate_gravity,
    draw_initial_conditions,
    energy,
    generate_split,
    integrate,
    load_split,
)

SMALL = GravityConfig(n_steps=2000, split_sizes=(30, 10, 10))  # 21 frames: steps 0, 100, ..., 2000


def _run(config: GravityConfig, n: int = 40, seed: int = 0) -> tuple[dict, dict]:
    init = draw_initial_conditions(config, n, np.random.RandomState(seed))
    return init, integrate(config, init["loc0"], init["vel0"], init["charges"])


def test_single_particle_falls_and_bounces_as_in_closed_form() -> None:
    """Dropped from rest at height 1.5 with g₀ = 1: z(t) = 1.5 − s²/2 with s the time to the nearest floor contact
    (contacts at t = √3 (2k + 1)), two bounces in 8 time units; horizontal motion is uniform. The discrete
    reflection costs O(dt): the error halves with dt."""
    start, velocity = np.array([[[0.3, -0.2, 1.5]]]), np.array([[[0.1, 0.2, 0.0]]])
    errors = []
    for dt in (1e-3, 5e-4):
        config = GravityConfig(n_particles=1, n_steps=round(8 / dt), sample_freq=round(0.01 / dt), dt=dt)
        out = integrate(config, start, velocity, np.ones((1, 1, 1)))
        t = np.arange(config.n_frames) * 0.01
        period = 2 * np.sqrt(3.0)
        s = np.abs((t + period / 2) % period - period / 2)
        errors.append(np.abs(out["loc"][0, :, 0, 2] - (1.5 - s**2 / 2)).max())
        np.testing.assert_allclose(out["loc"][0, :, 0, :2], start[0, :, :2] + t[:, None] * [0.1, 0.2], atol=1e-12)
        assert out["bounces"].sum() == 2 and out["bounces"][0, round(100 * np.sqrt(3)) + 1] == 1
    assert errors[0] < 2 * np.sqrt(3) * 1.5e-3 and errors[1] < 0.6 * errors[0], errors  # ~|v_z| dt a bounce


def test_energy_is_conserved_between_bounces() -> None:
    """Kinetic + softened Coulomb + g₀ z: between frames without a bounce the change is the integrator's O(dt²)
    error (a quarter of it at dt/2); across bounces it stays under 1 % of the energy's size."""
    worst = []
    for dt in (1e-3, 5e-4):
        config = GravityConfig(n_steps=round(2 / dt), sample_freq=round(0.1 / dt), dt=dt)
        init, out = _run(config)
        total = energy(config, out["loc"], out["vel"], init["charges"][:, None])
        change = np.abs(np.diff(total, axis=1))
        smooth = out["bounces"][:, 1:] == 0
        assert 0.5 < smooth.mean() < 1  # both kinds of intervals occur
        worst.append(change[smooth].max())
        assert np.abs(total - total[:, :1]).max() < 1e-2 * np.abs(total).mean()
    assert worst[0] < 5e-3 and 0.2 < worst[1] / worst[0] < 0.3, worst


def test_energy_by_hand() -> None:
    """Two particles, charges +1 and −1, 1 apart horizontally at heights 2 and 3, speeds 1 and 2 (ε = 0.1)."""
    loc = np.array([[0.0, 0, 2], [1, 0, 3]])
    vel = np.array([[1.0, 0, 0], [0, 0, 2]])
    expected = 0.5 + 2 - 1 / np.sqrt(2 + 0.01) + 5
    assert energy(GravityConfig(), loc, vel, np.array([[1.0], [-1.0]])) == pytest.approx(expected, rel=1e-14)


def test_accelerations_are_minus_the_gradient_of_the_energy() -> None:
    """Central differences (h = 1e-6) of the potential energy, with unit masses, for 3 random systems."""
    init = draw_initial_conditions(SMALL, 3, np.random.RandomState(1))
    loc, charges, h = init["loc0"], init["charges"], 1e-6
    gradient = np.zeros_like(loc)
    for index in np.ndindex(loc.shape[1:]):
        step = np.zeros_like(loc)
        step[(slice(None), *index)] = h
        up, down = (energy(SMALL, loc + s, 0 * loc, charges) for s in (step, -step))
        gradient[(slice(None), *index)] = (up - down) / (2 * h)
    np.testing.assert_allclose(accelerations(SMALL, loc, charges), -gradient, rtol=0, atol=1e-7)


def test_the_floor_is_never_crossed() -> None:
    """Checked at every step (sample_freq 1): heights stay >= 0, and the particles do reach the floor."""
    config = GravityConfig(n_steps=3000, sample_freq=1)
    init, out = _run(config, n=20)
    heights = out["loc"][..., 2]
    assert heights.min() >= 0 and heights.min() < 1e-3 and out["bounces"].sum() > 20
    with pytest.raises(ValueError, match="must be >= 0"):
        integrate(config, init["loc0"] - [0, 0, 10], init["vel0"], init["charges"])


def _transformed(rotation: np.ndarray, shift: np.ndarray, init: dict, out: dict, config: GravityConfig) -> tuple:
    """(the simulation from the transformed initial state, the transformed trajectory)."""
    moved = integrate(config, init["loc0"] @ rotation.T + shift, init["vel0"] @ rotation.T, init["charges"])
    return moved, out["loc"] @ rotation.T + shift


def test_dynamics_are_subequivariant() -> None:
    """A rotation about the vertical, a mirror through a vertical plane and a horizontal shift map trajectories to
    trajectories (to round-off); a tilt, or a vertical shift, does not."""
    init, out = _run(SMALL)
    c, s = np.cos(1.1), np.sin(1.1)
    about_z = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    horizontal = np.array([0.7, -1.3, 0.0])
    for rotation in (about_z, np.diag([1.0, -1.0, 1.0]) @ about_z):
        moved, expected = _transformed(rotation, horizontal, init, out, SMALL)
        np.testing.assert_allclose(moved["loc"], expected, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(moved["bounces"], out["bounces"])
    tilt = Rotation.from_rotvec([0.5, 0.0, 0.0]).as_matrix()
    lift = np.array([0.0, 0.0, 0.5 - (init["loc0"] @ tilt.T)[..., 2].min()])  # keep the tilted state above the floor
    for rotation, shift in ((tilt, lift), (np.eye(3), np.array([0.0, 0.0, 0.5]))):
        moved, expected = _transformed(rotation, shift, init, out, SMALL)
        assert np.median(np.abs(moved["loc"] - expected).max(axis=(1, 2, 3))) > 0.1


def test_initial_conditions_match_an_independent_redraw() -> None:
    """Per split block: charges (uniform < ½ -> −1), positions, velocities; heights folded above ``height``."""
    rs = np.random.RandomState(3)
    charges = np.where(rs.random_sample((4, 5, 1)) < 0.5, -1.0, 1.0)
    loc, vel = rs.randn(4, 5, 3), rs.randn(4, 5, 3)
    init = draw_initial_conditions(SMALL, 4, np.random.RandomState(3))
    np.testing.assert_array_equal(init["charges"], charges)
    np.testing.assert_allclose(init["loc0"], np.concatenate([loc[..., :2], 0.5 + np.abs(loc[..., 2:])], -1), atol=0)
    np.testing.assert_allclose(init["vel0"], 0.5 * vel / np.linalg.norm(vel, axis=-1, keepdims=True), atol=1e-15)


def test_splits_are_deterministic_and_drawn_in_order(tmp_path) -> None:
    """The same split twice; the valid split is the second block of the seed's stream; the cache returns it."""
    first = generate_split(SMALL, "val")
    np.testing.assert_array_equal(first["loc"], generate_split(SMALL, "valid")["loc"])
    rng = np.random.RandomState(SMALL.seed)
    draw_initial_conditions(SMALL, 30, rng)
    init = draw_initial_conditions(SMALL, 10, rng)
    np.testing.assert_array_equal(first["loc"][:, 0], init["loc0"])
    np.testing.assert_array_equal(first["charges"], init["charges"])
    assert np.abs(generate_split(SMALL, "test")["loc"][:, 0] - init["loc0"]).max() > 0.1
    cached = load_split("valid", tmp_path, SMALL)
    assert len(list(tmp_path.glob("gravity_valid_*.npz"))) == 1
    np.testing.assert_array_equal(cached["loc"], first["loc"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gravity, "generate_split", lambda *a: pytest.fail("the cached split was regenerated"))
        np.testing.assert_array_equal(load_split("valid", tmp_path, SMALL)["vel"], first["vel"])
    other = GravityConfig(n_steps=2000, split_sizes=(30, 10, 10), seed=8)
    assert np.abs(generate_split(other, "valid")["loc"] - first["loc"]).max() > 0.1


def test_dataset_samples_and_collate(tmp_path) -> None:
    data = load_split("train", tmp_path, SMALL)
    dataset = GravityDataset("train", 10, 20, cache_dir=tmp_path, config=SMALL, max_samples=12, dtype=torch.float64)
    assert len(dataset) == 12
    sample = dataset[3]
    np.testing.assert_array_equal(sample["pos"].numpy(), data["loc"][3, 10])
    np.testing.assert_array_equal(sample["vel"].numpy(), data["vel"][3, 10])
    np.testing.assert_array_equal(sample["target"].numpy(), data["loc"][3, 20])
    q = data["charges"][3, :, 0]
    assert sample["edge_attr"][:, 0].tolist() == [q[i] * q[j] for i in range(5) for j in range(5) if i != j]
    assert sample["gravity"].tolist() == [0.0, 0.0, -1.0]
    batch = collate_gravity([dataset[i] for i in range(4)])
    assert batch["pos"].shape == (20, 3) and batch["gravity"].shape == (4, 3) and batch["edge_index"].shape == (2, 80)
    assert batch["batch"].tolist() == [b for b in range(4) for _ in range(5)]
    with pytest.raises(ValueError, match="frames must lie"):
        GravityDataset("train", 10, 21, cache_dir=tmp_path, config=SMALL)
    with pytest.raises(ValueError, match="split must be one of"):
        GravityDataset("training", 10, 20, cache_dir=tmp_path, config=SMALL)
    with pytest.raises(ValueError, match="empty"):
        collate_gravity([])


def test_default_splits_and_bad_config() -> None:
    """3,000 / 500 / 500 trajectories of 41 frames (steps 0 ... 4000) by default, frames 30 -> 40 a second apart."""
    config = GravityConfig()
    assert config.split_sizes == (3000, 500, 500) and config.n_frames == 41
    assert config.key() != SMALL.key()
    with pytest.raises(ValueError, match="multiple of sample_freq"):
        GravityConfig(n_steps=150)
    with pytest.raises(ValueError, match="softening > 0"):
        GravityConfig(softening=0.0)
    with pytest.raises(ValueError, match="split_sizes"):
        GravityConfig(split_sizes=(10, -1, 1))
