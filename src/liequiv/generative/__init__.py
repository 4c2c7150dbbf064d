"""Generative models on geometric data: diffusion and flow matching.

Euclidean point clouds (in the zero-centre-of-mass subspace, so that an E(3)-equivariant denoiser gives an
E(3)-invariant density) and Lie groups (the isotropic Gaussian on SO(3), diffusion and geodesic flow matching on
SO(3) and SE(3)). Schedules, losses and samplers, one concept a module.
"""

from liequiv.generative.centering import centered_gaussian_log_density, centered_noise, remove_mean
from liequiv.generative.diffusion import EuclideanDiffusion
from liequiv.generative.flow_matching import EuclideanFlowMatching, minibatch_ot_coupling
from liequiv.generative.igso3 import (
    igso3_angle_density,
    igso3_density,
    igso3_log_density,
    igso3_score,
    sample_igso3,
)
from liequiv.generative.lie_diffusion import SE3Diffusion, SO3Diffusion
from liequiv.generative.lie_flow import GeodesicFlowMatching
from liequiv.generative.molecules import MoleculeDiffusion, MoleculeFlowMatching, atom_count_distribution
from liequiv.generative.ode import integrate_ode
from liequiv.generative.pfgm import pfgm_noise, pfgm_radius
from liequiv.generative.registration import RegistrationDiffusion
from liequiv.generative.schedules import CosineSchedule, LinearSchedule, NoiseSchedule, PolynomialSchedule, get_schedule
from liequiv.generative.trajectory import TrajectoryDiffusion, constant_velocity_prior

__all__ = [
    "CosineSchedule",
    "EuclideanDiffusion",
    "EuclideanFlowMatching",
    "GeodesicFlowMatching",
    "LinearSchedule",
    "MoleculeDiffusion",
    "MoleculeFlowMatching",
    "NoiseSchedule",
    "PolynomialSchedule",
    "RegistrationDiffusion",
    "SE3Diffusion",
    "SO3Diffusion",
    "TrajectoryDiffusion",
    "atom_count_distribution",
    "centered_gaussian_log_density",
    "centered_noise",
    "constant_velocity_prior",
    "get_schedule",
    "igso3_angle_density",
    "igso3_density",
    "igso3_log_density",
    "igso3_score",
    "integrate_ode",
    "minibatch_ot_coupling",
    "pfgm_noise",
    "pfgm_radius",
    "remove_mean",
    "sample_igso3",
]
