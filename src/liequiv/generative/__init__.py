"""Generative models on geometric data: diffusion and flow matching.

Euclidean point clouds (in the zero-centre-of-mass subspace, so that an E(3)-equivariant denoiser gives an
E(3)-invariant density) and Lie groups (the isotropic Gaussian on SO(3), diffusion and geodesic flow matching on
SO(3) and SE(3)). Schedules, losses and samplers, one concept a module.
"""
