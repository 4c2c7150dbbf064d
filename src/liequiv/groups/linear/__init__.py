"""GL+(n), SL(n) and the affine groups R^n ⋊ GL+(n), R^n ⋊ SL(n), through the polar decomposition.

After Mironenco & Forré, "Lie Group Decompositions for Equivariant Neural Networks" (ICLR 2024). The
exponential map of GL+(n) is not surjective (``diag(-1, -2)`` has no real logarithm), so instead of
Exp/Log every element is split into a compact and a Euclidean factor:

    A = R · P,   R = A (AᵀA)^(-1/2) ∈ SO(n),   P = (AᵀA)^(1/2) = Exp(S),   S ∈ Sym(n)

(``polar_decompose`` / ``polar_compose``; det A > 0 makes det R = +1, and ``S`` is traceless exactly
when det A = 1). ``(R, S) ↦ R · Exp(S)`` is a diffeomorphism SO(n) × Sym(n) → GL+(n), so GL+(n) ≅
SO(n) × R^(n(n+1)/2) and SL(n) ≅ SO(n) × R^(n(n+1)/2 - 1).

Dimension bookkeeping (``group_dim``) and the global coordinates ``x = (ω, s)`` (``from_coordinates``,
``to_coordinates``):

    ========  =============  ===========================  ===========================
    group     dim            ω: rotation part             s: symmetric part
    ========  =============  ===========================  ===========================
    GL+(n)    n²             n(n-1)/2 (so(n))              n(n+1)/2 (Sym(n))
    SL(n)     n² - 1         n(n-1)/2                      n(n+1)/2 - 1 (traceless)
    affine    + n            translation b comes first: (b, ω, s)
    ========  =============  ===========================  ===========================

e.g. GL+(2): 1 + 3 = 4, SL(2): 1 + 2 = 3, GL+(3): 3 + 6 = 9, SL(3): 3 + 5 = 8.

- ``s`` are orthonormal coordinates of Sym(n) for the Frobenius inner product (``sym_hat``/``sym_vee``):
  the diagonal entries (or, traceless, the diagonal in a Helmert basis of the sum-zero vectors), then
  √2·S_ij for i < j, so ‖s‖ = ‖S‖_F. This part of the chart is global: Sym(n) = R^(n(n+1)/2).
- ``ω`` are coordinates of so(n) (``so_hat``/``so_vee``): the generator of the pair i < j (row-major)
  has +1 at [j, i] and -1 at [i, j] (a rotation from axis i towards axis j), except for n = 3 where
  ω is the rotation vector of ``SO3`` (ω^ = ``skew(ω)``); for n = 2, ω is the angle. R = Exp(ω^)
  (``rotation_exp``) is onto SO(n) and one-to-one on the fundamental domain where every rotation angle
  of ω^ is below π; ``rotation_log`` is its inverse there (the principal logarithm).

Haar measure (``haar_log_density``). Writing dA = R(Ω P + dP) with Ω = Rᵀ dR, in the eigenbasis of
P = Q diag(σ) Qᵀ the pair (Ω_ij, dP_ij), i < j, maps to (Ω_ij σ_j + dP_ij, -Ω_ij σ_i + dP_ij) with
determinant σ_i + σ_j. With the Daleckii-Krein Jacobian of P = Exp(S), ∏_i σ_i ∏_{i<j} (σ_i - σ_j)/(λ_i - λ_j)
(λ = log σ the eigenvalues of S), the Haar measure dA / det(A)^n of GL+(n) becomes

    dA / det(A)^n = 2^(n(n-1)/4) · dΩ · h(S) ds,      h(S) = ∏_{i<j} sinh(λ_i - λ_j) / (λ_i - λ_j),

dΩ the Haar measure of SO(n) (the volume of Rᵀ dR in ``so_vee`` coordinates) and ds Lebesgue measure
in the coordinates s. So Haar on G is Haar on SO(n) times the measure h(S) ds on Sym(n) (h is also the
density of the invariant measure of Pos(n) = GL+(n)/SO(n) at AᵀA = Exp(2S)). h does not depend on
tr S, so SL(n) has the same h on traceless s. Below, μ = dR · h(S) ds with dR the Haar probability of
SO(n). The measure is infinite; ``sample_glplus``/``sample_sl`` draw R Haar-uniform and s ~ N(0,
scale²), a bi-SO(n)-invariant proposal q, and return ``log_weight = log h(S) - log q(s)``: for any
integrable φ, E_q[exp(log_weight) φ(A)] = ∫ φ dμ, and self-normalized weights turn the samples into
samples of any target ρ · μ. The affine group R^n ⋊ G has left Haar measure db dμ(A) / det A.

Gradients. ``eigh``/``svd`` backward divides by eigenvalue gaps and is NaN/inf at repeated eigenvalues
(at the identity, for instance). Here every spectral function is evaluated on detached inputs and its
first-order term is added back in the Daleckii-Krein form, where the divided differences have finite
limits (1/σ for log, 1/(σ_i + σ_j) for the polar factors), so gradients are finite and exact at P = I and
at repeated eigenvalues. This gives exact first derivatives; the eigenbasis is held fixed, so second
derivatives through ``polar_decompose``, ``sym_logm`` and ``rotation_log`` (n ≥ 4) are not exact.
``sym_expm`` and ``rotation_exp`` use ``torch.linalg.matrix_exp`` and are differentiable to any order.

Why functions and a small affine class rather than ``LieGroup`` subclasses: ``LieGroup`` is built on
Exp/Log (⊕, ⊖, ``between``, the Jacobians) and a fixed ``param_dim``; on GL+(n) Log is only partial,
which is the point of the paper. The decomposition is the chart here, and the affine groups expose the
group operations (compose, inverse, act, matrices) plus the global coordinates, for any n.
"""

from __future__ import annotations

from liequiv.groups.linear.affine import AffineGLPlus, AffineSL, sample_affine
from liequiv.groups.linear.algebra import group_dim, so_dim, so_hat, so_vee, sym_dim, sym_hat, sym_vee
from liequiv.groups.linear.coordinates import from_coordinates, to_coordinates
from liequiv.groups.linear.haar import HaarSample, haar_log_density, sample_glplus, sample_sl
from liequiv.groups.linear.polar import polar_compose, polar_decompose, sym_expm, sym_logm
from liequiv.groups.linear.rotations import rotation_exp, rotation_log, sample_rotation

__all__ = [
    "AffineGLPlus",
    "AffineSL",
    "HaarSample",
    "from_coordinates",
    "group_dim",
    "haar_log_density",
    "polar_compose",
    "polar_decompose",
    "rotation_exp",
    "rotation_log",
    "sample_affine",
    "sample_glplus",
    "sample_rotation",
    "sample_sl",
    "so_dim",
    "so_hat",
    "so_vee",
    "sym_dim",
    "sym_expm",
    "sym_hat",
    "sym_logm",
    "sym_vee",
    "to_coordinates",
]
