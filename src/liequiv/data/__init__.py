"""Data sets generated locally (and cached): N-body systems, charged particles under gravity above a floor, GFN2-xTB
molecular dynamics, EMT materials, registration pairs of procedural shapes; QM9 read from the qm9pack package;
atomistic frames; scikit-learn's bundled digits and affine-perturbed copies of them."""

from liequiv.data.atoms import (
    AtomsDataset,
    average_num_neighbors,
    check_frames,
    collate_atoms,
    fit_reference_energies,
    neighbor_list,
    read_atoms_file,
    rms_forces,
    write_extxyz,
)
from liequiv.data.digits import (
    DIGIT_SPLITS,
    load_digit_images,
    load_digits_split,
    perturbed_digits,
    random_linear_maps,
    warp_images,
)
from liequiv.data.gravity import GravityConfig, GravityDataset, collate_gravity
from liequiv.data.materials import MATERIALS, MaterialsConfig, load_material, material_datasets
from liequiv.data.molecules import MOLECULES, MDConfig, load_molecule, molecule_datasets, simulate_md, split_indices
from liequiv.data.nbody import (
    NBodyConfig,
    NBodyDataset,
    NBodyTrajectoryDataset,
    collate_nbody,
    load_split,
    simulate,
)
from liequiv.data.qm9 import QM9Dataset, collate_qm9, load_qm9, qm9_split
from liequiv.data.shapes import RegistrationConfig, RegistrationDataset, collate_registration, load_registration_split

__all__ = [
    "DIGIT_SPLITS",
    "MATERIALS",
    "MOLECULES",
    "AtomsDataset",
    "GravityConfig",
    "GravityDataset",
    "MDConfig",
    "MaterialsConfig",
    "NBodyConfig",
    "NBodyDataset",
    "NBodyTrajectoryDataset",
    "QM9Dataset",
    "RegistrationConfig",
    "RegistrationDataset",
    "average_num_neighbors",
    "check_frames",
    "collate_atoms",
    "collate_gravity",
    "collate_nbody",
    "collate_qm9",
    "collate_registration",
    "fit_reference_energies",
    "load_digit_images",
    "load_digits_split",
    "load_material",
    "load_molecule",
    "load_qm9",
    "load_registration_split",
    "load_split",
    "material_datasets",
    "molecule_datasets",
    "neighbor_list",
    "perturbed_digits",
    "qm9_split",
    "random_linear_maps",
    "read_atoms_file",
    "rms_forces",
    "simulate",
    "simulate_md",
    "split_indices",
    "warp_images",
    "write_extxyz",
]
