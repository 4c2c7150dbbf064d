"""Batched Lie groups after Solà et al., "A micro Lie theory for state estimation in robotics"."""

from liequiv.groups import linear
from liequiv.groups.base import LieGroup
from liequiv.groups.linear import AffineGLPlus, AffineSL, polar_compose, polar_decompose, sample_glplus, sample_sl
from liequiv.groups.rn import Rn
from liequiv.groups.se2 import SE2
from liequiv.groups.se3 import SE3, SE23
from liequiv.groups.sim3 import Sim3
from liequiv.groups.so2 import SO2
from liequiv.groups.so3 import SO3, convert_quaternion

__all__ = [
    "SE2",
    "SE3",
    "SE23",
    "SO2",
    "SO3",
    "AffineGLPlus",
    "AffineSL",
    "LieGroup",
    "Rn",
    "Sim3",
    "convert_quaternion",
    "linear",
    "polar_compose",
    "polar_decompose",
    "sample_glplus",
    "sample_sl",
]
