"""N-body generators: physics (conservation, symmetry), draw order, the published split, cache, data set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from liequiv.data import nbody
from liequiv.data.nbody import (
    NBodyConfig,
    NBodyDataset,
    NBodyTrajectoryDataset,
    collate_nbody,
    draw_initial_conditions,
    energy,
    forces,
    fully_connected_edges,
    integrate,
    load_split,
    simulate,
)

TINY_SPLITS = {"split_sizes": (12, 4, 4), "n_train": 6, "n_steps": 1000}  # 9 frames, steps 100 ... 900


def _run(kind: str, n: int, seed: int = 0, **overrides):
    config = NBodyConfig.preset(kind, **overrides)
    init = draw_initial_conditions(config, n, np.random.RandomState(seed))
    coupling = init["masses" if kind == "gravity" else "edges"]
    return config, init, coupling, integrate(config, init["loc0"], init["vel0"], coupling)


@pytest.fixture(scope="module")
def charged_test_split(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The published charged test split, regenerated (about 8 s on 2 cores)."""
    return load_split("charged", "test", cache_dir=tmp_path_factory.mktemp("nbody_cache"))


# ---------------------------------------------------------------------------------------------------------
# The published split

def test_first_trajectory_draws_match_an_independent_redraw() -> None:
    rs = np.random.RandomState(43)  # what generate_dataset.py --seed 43 does for trajectory 0
    charges = np.where(rs.random_sample(5) < 0.5, -1.0, 1.0)  # choice([-1, 0, 1], p=[1/2, 0, 1/2])
    loc = rs.randn(3, 5).T  # loc_std 1 · (5/5)^(1/3)
    vel = rs.randn(3, 5).T
    vel = vel * 0.5 / np.linalg.norm(vel, axis=1, keepdims=True)
    rs.randn(49, 3, 5), rs.randn(49, 3, 5)  # the unused noise of trajectory 0
    charges_next = np.where(rs.random_sample(5) < 0.5, -1.0, 1.0)
    init = draw_initial_conditions(NBodyConfig.preset("charged"), 2, np.random.RandomState(43))
    np.testing.assert_array_equal(init["charges"][0, :, 0], charges)
    np.testing.assert_array_equal(init["charges"][1, :, 0], charges_next)
    np.testing.assert_allclose(init["loc0"][0], loc, rtol=0, atol=1e-15)
    np.testing.assert_allclose(init["vel0"][0], vel, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(init["edges"][0], np.outer(charges, charges))


def test_gravity_draws_and_initial_frame() -> None:
    rs = np.random.RandomState(43)
    pos, vel = rs.randn(8, 3), rs.randn(8, 3)
    config = NBodyConfig.preset("gravity", n_particles=8, n_steps=200)
    out = simulate(config, 1)  # RandomState(config.seed) = RandomState(43)
    np.testing.assert_array_equal(out["loc"][0, 0], pos)  # gravity keeps the initial state as frame 0
    np.testing.assert_allclose(out["vel"][0, 0], vel - vel.mean(0), atol=1e-15)
    assert out["loc"].shape == (1, 2, 8, 3) and out["force"].shape == (1, 2, 8, 3)
    np.testing.assert_array_equal(out["masses"], np.ones((1, 8, 1)))


def test_published_test_split(charged_test_split: dict) -> None:
    """Charges of the test split from an inline re-draw of the whole stream; EGNN's baselines on frames 30 -> 40."""
    rs = np.random.RandomState(43)
    for _ in range(10_000 + 2_000):  # the training and validation trajectories come first
        rs.random_sample(5), rs.randn(3, 5), rs.randn(3, 5), rs.randn(49, 3, 5), rs.randn(49, 3, 5)
    first_test_charges = np.where(rs.random_sample(5) < 0.5, -1.0, 1.0)
    data = charged_test_split
    np.testing.assert_array_equal(data["charges"][0, :, 0], first_test_charges)
    assert data["loc"].shape == (2000, 49, 5, 3) and data["charges"].shape == (2000, 5, 1)
    x30, v30, x40 = data["loc"][:, 30], data["vel"][:, 30], data["loc"][:, 40]
    # Regenerated: 0.2715 and 0.1079. Both move in the 4th (x30) and 3rd (x30 + v30) digit with a
    # mathematically equal but differently rounded force formula: a few chaotic trajectories diverge.
    assert abs(((x30 - x40) ** 2).mean() - 0.2715) < 0.005
    assert abs(((x30 + 1.0 * v30 - x40) ** 2).mean() - 0.108) < 0.003  # 1,000 steps of dt 0.001
    assert 0.40 < data["clipped"].mean() < 0.52  # 46 % of test trajectories meet the force clip once or more


def test_split_draws_are_consecutive() -> None:
    """valid starts where the 10,000 drawn training trajectories end (with tiny sizes, so it is fast)."""
    config = NBodyConfig.preset("charged", **TINY_SPLITS)
    rng = np.random.RandomState(config.seed)
    drawn = [draw_initial_conditions(config, size, rng)["charges"] for size in config.split_sizes]
    train, valid = nbody.generate_split(config, "train"), nbody.generate_split(config, "val")
    np.testing.assert_array_equal(train["charges"], drawn[0][: config.n_train])
    np.testing.assert_array_equal(valid["charges"], drawn[1])


# ---------------------------------------------------------------------------------------------------------
# Physics

def test_momentum_conserved_without_clipping_and_not_with() -> None:
    config, init, _, out = _run("charged", 16)
    change = np.abs(out["vel"].sum(2) - init["vel0"].sum(1)[:, None]).max((1, 2))
    clipped = out["clipped"]
    assert 0 < clipped.sum() < 16
    assert change[~clipped].max() < 1e-12  # measured 1.6e-14 over 4,900 steps
    # The clip acts on each particle's net force, not on pair forces, so it breaks Newton's third law.
    assert change[clipped].max() > 1e-3  # measured up to 4e-3
    for kind, overrides in (("springs", {}), ("gravity", {"n_particles": 12, "n_steps": 500})):
        config, init, coupling, out = _run(kind, 4, **overrides)
        assert not out["clipped"].any()
        momentum = out["vel"].sum(2)
        np.testing.assert_allclose(momentum, np.broadcast_to(init["vel0"].sum(1)[:, None], momentum.shape),
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(forces(config, init["loc0"], coupling).sum(1), 0.0, atol=1e-12)


def test_energy_drift_small_for_small_dt() -> None:
    """Leapfrog energy error is second order; measured with the velocity synchronised to the positions."""
    config, init, coupling, out = _run("charged", 16, dt=1e-4, n_steps=20_000, sample_freq=1000)
    t, frames = out["loc"].shape[:2]
    f = forces(config, out["loc"].reshape(t * frames, 5, 3), np.repeat(coupling, frames, 0)).reshape(out["loc"].shape)
    vel_sync = out["vel"] + 0.5 * config.dt * f  # saved velocities lag the positions by half a step
    e = energy(config, out["loc"], vel_sync, coupling[:, None])
    drift = np.abs(e - e[:, :1]).max(1)[~out["clipped"]]
    assert drift.size >= 8
    assert drift.max() < 5e-5  # measured 4.9e-6 (kinetic energy 0.625); 3e-3 with dt = 1e-3
    # The published full first kick shifts the energy by O(dt); a half kick makes it O(dt²).
    e0 = energy(config, init["loc0"], init["vel0"], coupling)
    assert np.abs(e[:, 0] - e0)[~out["clipped"]].max() < 1e-3  # measured 6.5e-5
    config, init, coupling, out = _run("gravity", 3, n_particles=12, n_steps=2000)
    e = energy(config, out["loc"], out["vel"], coupling[:, None])  # Verlet saves synchronised velocities
    e0 = energy(config, init["loc0"], init["vel0"], coupling)
    assert (np.abs(e - e0[:, None]).max(1) / np.abs(e0)).max() < 1e-3  # measured 1e-4


def test_determinism_from_seed() -> None:
    config = NBodyConfig.preset("charged", n_steps=1000)
    a = simulate(config, 3, np.random.RandomState(7))
    b = simulate(config, 3, np.random.RandomState(7))
    c = simulate(config, 3, np.random.RandomState(8))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["loc"], c["loc"])
    np.testing.assert_array_equal(simulate(config, 3)["charges"], simulate(config, 3)["charges"])


@pytest.mark.parametrize(("kind", "overrides"), [("charged", {}), ("springs", {}),
                                                 ("gravity", {"n_particles": 12, "n_steps": 1000})])
def test_rotation_and_translation_equivariance(kind: str, overrides: dict) -> None:
    """Rotating or shifting the initial state rotates or shifts the trajectory, where clipping is inactive."""
    config, init, coupling, out = _run(kind, 12, **overrides)
    keep = ~out["clipped"]  # charged: the clip is component-wise, so it is not rotation-equivariant
    assert keep.sum() >= 4
    rot = Rotation.random(random_state=1).as_matrix()
    shift = np.array([3.0, -2.0, 1.5])
    rotated = integrate(config, init["loc0"] @ rot.T, init["vel0"] @ rot.T, coupling)
    shifted = integrate(config, init["loc0"] + shift, init["vel0"], coupling)
    np.testing.assert_allclose(rotated["loc"][keep], out["loc"][keep] @ rot.T, rtol=0, atol=1e-9)  # measured 3e-13
    np.testing.assert_allclose(rotated["vel"][keep], out["vel"][keep] @ rot.T, rtol=0, atol=1e-9)
    np.testing.assert_allclose(shifted["loc"][keep], out["loc"][keep] + shift, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(rotated["clipped"][keep], False)


def test_clipping_breaks_rotation_equivariance() -> None:
    """Opposite charges 0.05 apart attract with |F| = 400: clipping each component to ±100 is not equivariant."""
    config = NBodyConfig.preset("charged", n_particles=2, n_steps=2, sample_freq=1)  # one frame: step 1
    loc = np.array([[[0.0, 0.0, 0.0], [0.03, 0.04, 0.0]]])
    vel = np.zeros_like(loc)
    edges = np.array([[[1.0, -1.0], [-1.0, 1.0]]])
    rot = Rotation.from_euler("z", 0.7).as_matrix()
    plain = integrate(config, loc, vel, edges)
    rotated = integrate(config, loc @ rot.T, vel @ rot.T, edges)
    assert plain["clipped"].all() and rotated["clipped"].all()
    assert np.abs(rotated["loc"] - plain["loc"] @ rot.T).max() > 1e-7
    np.testing.assert_allclose(plain["vel"].sum(2), 0.0, atol=1e-15)  # two bodies: clipped forces stay opposite


def test_frames_and_first_kick() -> None:
    """Frame k of the NRI kinds is step 100 (k + 1); the stored velocity is the one that made the step."""
    config = NBodyConfig.preset("charged", n_steps=300)
    assert config.n_frames == 2 and config.frame_step(0) == 100 and config.frame_step(1) == 200
    assert NBodyConfig.preset("gravity").n_frames == 50 and NBodyConfig.preset("gravity").frame_step(30) == 3000
    init = draw_initial_conditions(config, 2, np.random.RandomState(0))
    x, v, dt = init["loc0"].copy(), init["vel0"].copy(), config.dt
    v = v + dt * np.clip(forces(config, x, init["edges"]), -100, 100)  # the published full first kick
    for _ in range(100):
        x = x + dt * v
        saved_v = v
        v = v + dt * np.clip(forces(config, x, init["edges"]), -100, 100)
    out = integrate(config, init["loc0"], init["vel0"], init["edges"])
    np.testing.assert_allclose(out["loc"][:, 0], x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["vel"][:, 0], saved_v, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Cache

def test_cache_regenerates_missing_and_corrupt_files(tmp_path, capsys, monkeypatch) -> None:
    config = NBodyConfig.preset("charged", **TINY_SPLITS)
    monkeypatch.setenv("LIEQUIV_CACHE", str(tmp_path / "env_cache"))
    first = load_split("charged", "test", config=config)
    assert "not found; generating" in capsys.readouterr().err
    (path,) = (tmp_path / "env_cache").glob("nbody_charged_test_*.npz")
    assert config.key() in path.name
    again = load_split("charged", "test", config=config)
    assert capsys.readouterr().err == ""
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    for damage in (b"not a zip file", path.read_bytes()[: path.stat().st_size // 2]):
        path.write_bytes(damage)
        repaired = load_split("charged", "test", config=config)
        assert "unusable" in capsys.readouterr().err
        np.testing.assert_array_equal(repaired["loc"], first["loc"])
    load_split("charged", "test", config=config)
    assert capsys.readouterr().err == ""  # the repaired file is read back
    other = NBodyConfig.preset("charged", **{**TINY_SPLITS, "dt": 0.002})
    assert other.key() != config.key()
    load_split("charged", "test", cache_dir=tmp_path / "explicit", config=other)
    assert "not found" in capsys.readouterr().err
    assert len(list((tmp_path / "explicit").glob("*.npz"))) == 1


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        NBodyConfig(kind="magnetic")
    with pytest.raises(ValueError, match="multiple"):
        NBodyConfig(n_steps=1050)
    with pytest.raises(ValueError, match="n_train"):
        NBodyConfig(n_train=20_000)
    with pytest.raises(ValueError, match="split"):
        load_split("charged", "holdout", config=NBodyConfig.preset("charged", **TINY_SPLITS))
    with pytest.raises(ValueError, match="does not match"):
        load_split("springs", "test", config=NBodyConfig.preset("charged"))
    with pytest.raises(TypeError, match="RandomState"):
        simulate(NBodyConfig(), 1, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------------------
# Graphs, data set, batches

def test_fully_connected_edges() -> None:
    edges = fully_connected_edges(4, 3)
    assert edges.shape == (2, 3 * 12) and edges.dtype == torch.int64
    src, dst = edges
    assert (src != dst).all() and (src // 4 == dst // 4).all()  # no self-loops, no edges across graphs
    pairs = {(int(a), int(b)) for a, b in edges.T}
    assert len(pairs) == 36 and all((b, a) in pairs for a, b in pairs)  # each pair once, both directions
    assert edges[:, :3].tolist() == [[0, 0, 0], [1, 2, 3]]  # source-major
    assert torch.equal(edges[:, 12:24], edges[:, :12] + 4)
    assert fully_connected_edges(1, 2).shape == (2, 0)
    assert fully_connected_edges(3, 0).shape == (2, 0)


@pytest.mark.parametrize("kind", ["charged", "springs", "gravity"])
def test_dataset_and_collate(kind: str, tmp_path) -> None:
    overrides = {"n_particles": 6} if kind == "gravity" else {}
    config = NBodyConfig.preset(kind, **TINY_SPLITS, **overrides)
    data = load_split(kind, "train", cache_dir=tmp_path, config=config)
    ds = NBodyDataset("train", kind=kind, frame_in=3, frame_out=5, cache_dir=tmp_path, config=config)
    n = config.n_particles
    assert len(ds) == config.n_train == data["loc"].shape[0]
    sample = ds[1]
    assert sample["pos"].dtype == torch.float32
    assert sample["pos"].shape == sample["vel"].shape == sample["target"].shape == (n, 3)
    assert sample["charges"].shape == (n, 1) and sample["edge_attr"].shape == (n * (n - 1), 1)
    np.testing.assert_allclose(sample["pos"].numpy(), data["loc"][1, 3], rtol=1e-6)
    np.testing.assert_allclose(sample["target"].numpy(), data["loc"][1, 5], rtol=1e-6)
    src, dst = fully_connected_edges(n)
    pair = data["edges"][1][src, dst] if kind != "gravity" else np.ones(n * (n - 1))
    np.testing.assert_array_equal(sample["edge_attr"][:, 0].numpy(), pair)
    if kind == "charged":
        np.testing.assert_array_equal(sample["charges"].numpy(), data["charges"][1])
    assert ("force" in sample) == (kind == "gravity")

    batch = collate_nbody([ds[0], ds[1], ds[2]])
    assert batch["pos"].shape == (3 * n, 3) and batch["charges"].shape == (3 * n, 1)
    assert batch["edge_index"].shape == (2, 3 * n * (n - 1)) and batch["edge_attr"].shape == (3 * n * (n - 1), 1)
    assert torch.equal(batch["batch"], torch.arange(3).repeat_interleave(n))
    assert torch.equal(batch["edge_index"], fully_connected_edges(n, 3))
    assert torch.equal(batch["pos"][n:2 * n], ds[1]["pos"])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_nbody)
    assert sum(b["batch"].max().item() + 1 for b in loader) == len(ds)


def test_dataset_feeds_egnn(tmp_path) -> None:
    from liequiv.models import EGNN

    config = NBodyConfig.preset("charged", **TINY_SPLITS)
    ds = NBodyDataset("valid", config=config, frame_in=2, frame_out=4, cache_dir=tmp_path, max_samples=3)
    assert len(ds) == 3
    batch = collate_nbody([ds[i] for i in range(3)])
    out = EGNN(node_dim=1, hidden=8, layers=2)(batch["pos"], batch["vel"], batch["charges"], batch["edge_index"],
                                                batch["batch"])
    assert out.shape == batch["target"].shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="frames"):
        NBodyDataset("valid", config=config, frame_in=30, cache_dir=tmp_path)


def test_trajectory_dataset_frames_and_collate(tmp_path) -> None:
    """Past and future frames are the split's consecutive frames, per particle; batches stack along particles."""
    config = NBodyConfig.preset("charged", **TINY_SPLITS)  # 9 frames
    data = load_split("charged", "valid", cache_dir=tmp_path, config=config)
    ds = NBodyTrajectoryDataset("valid", history=3, horizon=4, start=2, cache_dir=tmp_path, config=config,
                                dtype=torch.float64)
    assert len(ds) == config.split_sizes[1]
    sample = ds[2]
    assert sample["pos"].shape == sample["vel"].shape == (5, 3, 3) and sample["target"].shape == (5, 4, 3)
    for t in range(3):  # history frame t is frame start + t
        np.testing.assert_array_equal(sample["pos"][:, t].numpy(), data["loc"][2, 2 + t])
        np.testing.assert_array_equal(sample["vel"][:, t].numpy(), data["vel"][2, 2 + t])
    for t in range(4):  # future frame t is frame start + history + t
        np.testing.assert_array_equal(sample["target"][:, t].numpy(), data["loc"][2, 5 + t])
    np.testing.assert_array_equal(sample["charges"].numpy(), data["charges"][2])
    src, dst = fully_connected_edges(5)
    np.testing.assert_array_equal(sample["edge_attr"][:, 0].numpy(), data["edges"][2][src, dst])
    single = NBodyDataset("valid", frame_in=4, frame_out=8, cache_dir=tmp_path, config=config, dtype=torch.float64)
    assert torch.equal(single[2]["pos"], sample["pos"][:, -1])
    assert torch.equal(single[2]["target"], sample["target"][:, -1])

    batch = collate_nbody([ds[0], ds[1], ds[2]])
    assert batch["pos"].shape == (15, 3, 3) and batch["target"].shape == (15, 4, 3)
    assert torch.equal(batch["pos"][10:], sample["pos"])
    assert torch.equal(batch["edge_index"], fully_connected_edges(5, 3))
    assert torch.equal(batch["batch"], torch.arange(3).repeat_interleave(5))
    whole = NBodyTrajectoryDataset("valid", history=2, horizon=7, cache_dir=tmp_path, config=config, max_samples=2)
    assert len(whole) == 2 and whole[0]["pos"].dtype == torch.float32  # 2 + 7 = all 9 frames


def test_trajectory_dataset_checks_the_frames(tmp_path) -> None:
    config = NBodyConfig.preset("charged", **TINY_SPLITS)
    for kwargs in ({"history": 3, "horizon": 5, "start": 2}, {"history": 10, "horizon": 1}):
        with pytest.raises(ValueError, match="exceeds the 9 saved frames"):
            NBodyTrajectoryDataset("test", **kwargs, cache_dir=tmp_path, config=config)
    for kwargs in ({"history": 0}, {"horizon": 0}, {"start": -1}):
        with pytest.raises(ValueError, match="history >= 1"):
            NBodyTrajectoryDataset("test", **kwargs, cache_dir=tmp_path, config=config)
    assert not list(tmp_path.glob("*.npz"))  # bad frames are refused before anything is generated
    springs = NBodyConfig.preset("springs", **TINY_SPLITS)
    sample = NBodyTrajectoryDataset("test", history=2, horizon=3, cache_dir=tmp_path, config=springs)[0]
    assert sample["charges"].eq(1).all() and sample["edge_attr"].shape == (20, 1)
