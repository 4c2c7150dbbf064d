"""Batched Lie groups after Solà et al., "A micro Lie theory for state estimation in robotics"."""

from liequiv.groups.base import LieGroup
from liequiv.groups.se3 import SE3, SE23
from liequiv.groups.so3 import SO3, convert_quaternion

__all__ = ["SE3", "SE23", "SO3", "LieGroup", "convert_quaternion"]
