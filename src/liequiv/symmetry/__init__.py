"""Making any model symmetric, and proving it: groups, group elements and field types, the equivariance
checker, frame averaging and canonical frames, invariant initial representations (MDS), soft-equivariance
regularizers and augmentation."""

from liequiv.symmetry.augmentation import RandomSymmetryTransform
from liequiv.symmetry.checker import EquivarianceReport, assert_equivariant, check_equivariance, default_tolerance
from liequiv.symmetry.elements import GroupElement
from liequiv.symmetry.fields import FieldType, as_field_type
from liequiv.symmetry.frames import FrameAveraging, Frames, canonicalize, pca_frames
from liequiv.symmetry.groups import Group, as_group, rotations_about
from liequiv.symmetry.mds import mds_embedding, mds_from_squared_distances
from liequiv.symmetry.regularizers import SoftEquivarianceRegularizer, equivariance_error

__all__ = [
    "EquivarianceReport",
    "FieldType",
    "FrameAveraging",
    "Frames",
    "Group",
    "GroupElement",
    "RandomSymmetryTransform",
    "SoftEquivarianceRegularizer",
    "as_field_type",
    "as_group",
    "assert_equivariant",
    "canonicalize",
    "check_equivariance",
    "default_tolerance",
    "equivariance_error",
    "mds_embedding",
    "mds_from_squared_distances",
    "pca_frames",
    "rotations_about",
]
