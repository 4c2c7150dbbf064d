"""Irreducible representations of O(3) and their direct sums, in e3nn's string format (``"16x0e + 8x1o"``).

``Irrep(l, p)`` is the degree-``l`` representation with parity ``p = ±1`` (``"e"`` even, ``"o"`` odd); ``Irreps`` is an
immutable tuple of ``(mul, Irrep)``. A feature vector of ``irreps`` has ``irreps.dim`` entries: the concatenation of its
blocks, each ``[mul, 2l+1]`` flattened. Ordering, parsing, printing and ``sort`` behave as in e3nn 0.6.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import torch

from liequiv.groups.so3 import SO3, quaternion_exp, quaternion_to_matrix
from liequiv.o3.wigner import wigner_D
from liequiv.validation import check_degree

__all__ = ["Irrep", "Irreps", "IrrepsSort", "MulIr"]

_PARITY = {"e": 1, "o": -1}


def angles_to_matrix(alpha: Any, beta: Any, gamma: Any) -> torch.Tensor:
    """e3nn's Euler angles: ``R = R_y(α) R_x(β) R_y(γ)`` ``[..., 3, 3]`` (angles broadcast), the intrinsic
    ``"YXY"`` Euler angles of ``SO3``."""
    alpha, beta, gamma = torch.broadcast_tensors(*(torch.as_tensor(a) for a in (alpha, beta, gamma)))
    if not alpha.is_floating_point():
        alpha, beta, gamma = alpha.double(), beta.double(), gamma.double()
    return SO3.from_euler(torch.stack([alpha, beta, gamma], -1), "YXY").as_matrix()


def _with_parity(R: torch.Tensor, k: Any) -> torch.Tensor:
    """``(-1)^k R``: with ``k`` odd, the improper element ``-R`` (inversion times ``R``)."""
    if k is None:
        return R
    sign = 1 - 2 * (torch.as_tensor(k, device=R.device) % 2).to(R.dtype)
    return R * sign[..., None, None]


def check_features(x: Any, irreps: Irreps, name: str = "x") -> None:
    """Raise ``TypeError`` unless ``x`` is a tensor, ``ValueError`` unless it has shape ``[..., irreps.dim]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] != irreps.dim:
        raise ValueError(f"{name} must have shape [..., {irreps.dim}] for irreps {irreps}, got {tuple(x.shape)}")


class _FromParametrizations:
    """``D_from_angles``, ``D_from_quaternion``, ``D_from_axis_angle`` on top of the class's ``D_from_matrix``."""

    __slots__ = ()

    def D_from_angles(self, alpha: Any, beta: Any, gamma: Any, k: Any = None) -> torch.Tensor:
        """``D`` of ``(-1)^k R_y(α) R_x(β) R_y(γ)`` (e3nn's angles and parity exponent ``k``)."""
        return self.D_from_matrix(_with_parity(angles_to_matrix(alpha, beta, gamma), k))

    def D_from_quaternion(self, q: torch.Tensor, k: Any = None) -> torch.Tensor:
        """``D`` of the rotation of unit quaternions ``q [..., 4]`` in **this library's** ``(x, y, z, w)`` order
        (e3nn puts ``w`` first), times the inversion when ``k`` is odd."""
        if q.shape[-1:] != (4,):
            raise ValueError(f"q must have shape [..., 4] (x, y, z, w), got {tuple(q.shape)}")
        return self.D_from_matrix(_with_parity(quaternion_to_matrix(q), k))

    def D_from_axis_angle(self, axis: torch.Tensor, angle: Any, k: Any = None) -> torch.Tensor:
        """``D`` of the rotation by ``angle`` about the unit ``axis [..., 3]`` (times the inversion when ``k`` is
        odd)."""
        if axis.shape[-1:] != (3,):
            raise ValueError(f"axis must have shape [..., 3], got {tuple(axis.shape)}")
        angle = torch.as_tensor(angle, dtype=axis.dtype, device=axis.device)
        R = quaternion_to_matrix(quaternion_exp(axis * angle[..., None]))
        return self.D_from_matrix(_with_parity(R, k))


class Irrep(tuple, _FromParametrizations):
    """Irreducible representation ``(l, p)`` of O(3); ``Irrep(1, -1) == Irrep("1o")``.

    Ordered as the tuple ``(l, p)`` (so ``0o < 0e < 1o < 1e``, as e3nn). ``"ly"`` parses to parity ``(-1)^l``.
    """

    __slots__ = ()

    def __new__(cls, l: int | str | tuple | Irrep, p: int | None = None) -> Irrep:
        if p is None:
            if isinstance(l, Irrep):
                return l
            if isinstance(l, str):
                l, p = cls._parse(l)
            elif isinstance(l, tuple) and len(l) == 2:
                l, p = l
            else:
                raise TypeError(f"Irrep expects (l, p), a string such as '1o' or a pair, got {l!r}")
        check_degree(l, "l")
        if isinstance(p, bool) or p not in (-1, 1):
            raise ValueError(f"p must be -1 or 1, got {p!r}")
        return super().__new__(cls, (l, p))

    @staticmethod
    def _parse(s: str) -> tuple[int, int]:
        name = s.strip()
        digits, kind = name[:-1], name[-1:]
        if not digits.isdigit() or kind not in ("e", "o", "y"):
            raise ValueError(f'unable to convert string "{s}" into an Irrep')
        l = int(digits)
        return l, (-1) ** l if kind == "y" else _PARITY[kind]

    @property
    def l(self) -> int:  # noqa: E743
        """Degree ``l >= 0``."""
        return self[0]

    @property
    def p(self) -> int:
        """Parity ``±1``."""
        return self[1]

    @property
    def dim(self) -> int:
        """Dimension ``2l + 1``."""
        return 2 * self[0] + 1

    def is_scalar(self) -> bool:
        """True for ``0e``."""
        return self == (0, 1)

    def __repr__(self) -> str:
        return f"{self[0]}{'e' if self[1] == 1 else 'o'}"

    __str__ = __repr__

    def __mul__(self, other: Any) -> Any:
        """``ir1 * ir2``: tuple of the irreps in the product, ``|l1-l2|..l1+l2`` with parity ``p1 p2``.

        ``ir * n`` (``n`` an int) is ``Irreps([(n, ir)])``.
        """
        if isinstance(other, int) and not isinstance(other, bool):
            return Irreps([(other, self)])
        other = Irrep(other)
        p = self.p * other.p
        return tuple(Irrep(l, p) for l in range(abs(self.l - other.l), self.l + other.l + 1))

    def __rmul__(self, other: Any) -> Irreps:
        """``n * ir`` is ``Irreps([(n, ir)])``."""
        if isinstance(other, int) and not isinstance(other, bool):
            return Irreps([(other, self)])
        return NotImplemented

    def __add__(self, other: Any) -> Irreps:  # type: ignore[override]
        return Irreps(self) + Irreps(other)

    def __radd__(self, other: Any) -> Irreps:
        return Irreps(other) + Irreps(self)

    def D_from_matrix(self, R: torch.Tensor) -> torch.Tensor:
        """Representation matrix ``[..., 2l+1, 2l+1]`` of ``R [..., 3, 3]`` in O(3).

        ``D(R) = p^k D_l(R / det R)`` with ``k = 1`` for improper ``R`` (``det R = -1``), else ``k = 0``.
        """
        d = torch.linalg.det(R).sign()
        D = wigner_D(self.l, R * d[..., None, None])
        if self.p == 1:
            return D
        return D * d[..., None, None]

    @classmethod
    def iterator(cls, lmax: int | None = None) -> Iterator[Irrep]:
        """All irreps ``0e, 0o, 1o, 1e, 2e, 2o, ...`` (natural parity first) up to ``lmax`` (forever if None)."""
        l = 0
        while lmax is None or l <= lmax:
            yield cls(l, (-1) ** l)
            yield cls(l, -((-1) ** l))
            l += 1


class MulIr(NamedTuple):
    """``mul`` copies of ``ir``; printed ``"16x0e"``."""

    mul: int
    ir: Irrep

    @property
    def dim(self) -> int:
        """``mul * (2l + 1)``."""
        return self.mul * self.ir.dim

    def __repr__(self) -> str:
        return f"{self.mul}x{self.ir}"

    __str__ = __repr__


class IrrepsSort(NamedTuple):
    """Result of :meth:`Irreps.sort`: ``sorted[p[i]] = original[i]`` and ``original[inv[i]] = sorted[i]``."""

    irreps: Irreps
    p: tuple[int, ...]
    inv: tuple[int, ...]


def _as_mul_ir(item: Any) -> MulIr:
    if isinstance(item, MulIr):
        return item
    if isinstance(item, (Irrep, str)):
        return MulIr(1, Irrep(item))
    if isinstance(item, tuple) and len(item) == 2:
        mul, ir = item
        if isinstance(mul, int) and not isinstance(mul, bool) and mul >= 0:
            return MulIr(mul, Irrep(ir))
    raise ValueError(f'Unable to interpret "{item}" as an irrep.')


class Irreps(tuple, _FromParametrizations):
    """Direct sum of irreps: an immutable tuple of :class:`MulIr` ``(mul, ir)``.

    Built from a string ``"16x0e + 8x1o"`` (``"1o"`` means ``"1x1o"``, ``""`` is empty), an :class:`Irrep`, or an
    iterable of irreps, strings and ``(mul, ir)`` pairs. ``str`` gives e3nn's form ``"16x0e+8x1o"``.
    """

    __slots__ = ()

    def __new__(cls, irreps: str | Irrep | Iterable[Any] | None = None) -> Irreps:
        if isinstance(irreps, Irreps):
            return irreps
        if irreps is None:
            items: list[MulIr] = []
        elif isinstance(irreps, Irrep):
            items = [MulIr(1, irreps)]
        elif isinstance(irreps, str):
            items = cls._parse(irreps)
        elif isinstance(irreps, Iterable):
            items = [_as_mul_ir(x) for x in irreps]
        else:
            raise TypeError(f"irreps must be a string, an Irrep or an iterable, got {type(irreps).__name__}")
        return super().__new__(cls, items)

    @staticmethod
    def _parse(s: str) -> list[MulIr]:
        if s.strip() == "":
            return []
        out = []
        for term in s.split("+"):
            mul_s, sep, ir_s = term.strip().rpartition("x")
            mul_s = mul_s.strip()
            if sep and not mul_s.isdigit():
                raise ValueError(f'Unable to convert string "{s}" into an Irreps')
            try:
                ir = Irrep(ir_s)
            except ValueError:
                raise ValueError(f'Unable to convert string "{s}" into an Irreps') from None
            out.append(MulIr(int(mul_s) if sep else 1, ir))
        return out

    @staticmethod
    def spherical_harmonics(lmax: int, p: int = -1) -> Irreps:
        """Irreps ``0e + 1o + 2e + ...`` of the spherical harmonics up to ``lmax`` (parity ``p^l``)."""
        check_degree(lmax, "lmax")
        if p not in (-1, 1):
            raise ValueError(f"p must be -1 or 1, got {p!r}")
        return Irreps([(1, (l, p**l)) for l in range(lmax + 1)])

    def __repr__(self) -> str:
        return "+".join(str(x) for x in self)

    __str__ = __repr__

    def __getitem__(self, i: Any) -> Any:
        out = super().__getitem__(i)
        return Irreps(out) if isinstance(i, slice) else out

    def __contains__(self, ir: Any) -> bool:
        ir = Irrep(ir)
        return any(x.ir == ir for x in self)

    def __add__(self, other: Any) -> Irreps:  # type: ignore[override]
        return Irreps(tuple(self) + tuple(Irreps(other)))

    def __radd__(self, other: Any) -> Irreps:
        return Irreps(other) + self

    def __mul__(self, n: Any) -> Irreps:  # type: ignore[override]
        """``irreps * n``: the sequence repeated ``n`` times (not a tensor product)."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"Irreps can only be multiplied by an int, got {type(n).__name__}")
        return Irreps(tuple(self) * n)

    __rmul__ = __mul__

    @property
    def dim(self) -> int:
        """Total dimension ``Σ mul (2l + 1)``."""
        return sum(x.dim for x in self)

    @property
    def num_irreps(self) -> int:
        """Total multiplicity ``Σ mul``."""
        return sum(x.mul for x in self)

    @property
    def ls(self) -> list[int]:
        """Degree of every copy, repeated ``mul`` times."""
        return [x.ir.l for x in self for _ in range(x.mul)]

    @property
    def lmax(self) -> int:
        """Largest degree among entries with ``mul > 0`` (ValueError when there is none), as e3nn."""
        ls = [x.ir.l for x in self if x.mul > 0]
        if not ls:
            raise ValueError(f'Cannot get lmax of Irreps "{self}" (no irrep with mul > 0)')
        return max(ls)

    def count(self, ir: Any) -> int:  # type: ignore[override]
        """Total multiplicity of ``ir``."""
        ir = Irrep(ir)
        return sum(x.mul for x in self if x.ir == ir)

    def slices(self) -> list[slice]:
        """Slice of each ``(mul, ir)`` block in a feature vector of size ``dim``."""
        out, start = [], 0
        for x in self:
            out.append(slice(start, start + x.dim))
            start += x.dim
        return out

    def simplify(self) -> Irreps:
        """Merge neighbouring equal irreps and drop zero multiplicities (no sorting, as e3nn)."""
        out: list[MulIr] = []
        for mul, ir in self:
            if out and out[-1].ir == ir:
                out[-1] = MulIr(out[-1].mul + mul, ir)
            elif mul > 0:
                out.append(MulIr(mul, ir))
        return Irreps(out)

    def remove_zero_multiplicities(self) -> Irreps:
        """Drop the entries with ``mul == 0``."""
        return Irreps([x for x in self if x.mul > 0])

    def sort(self) -> IrrepsSort:
        """Stable sort by irrep; returns ``(irreps, p, inv)`` as e3nn: ``sorted[p[i]] = self[i]``, ``inv = p^{-1}``."""
        inv = tuple(sorted(range(len(self)), key=lambda i: (self[i].ir, i, self[i].mul)))
        p = [0] * len(inv)
        for new, old in enumerate(inv):
            p[old] = new
        return IrrepsSort(Irreps([self[i] for i in inv]), tuple(p), inv)

    def regroup(self) -> Irreps:
        """``sort`` then ``simplify``."""
        return self.sort()[0].simplify()

    def filter(
        self,
        keep: Any = None,
        *,
        drop: Any = None,
        lmax: int | None = None,
    ) -> Irreps:
        """Keep the entries whose irrep is in ``keep`` (irreps, string, list or predicate on ``MulIr``), or drop those
        in ``drop``, or keep ``l <= lmax``. At most one of the three."""
        if sum(x is not None for x in (keep, drop, lmax)) > 1:
            raise ValueError("filter takes at most one of keep, drop and lmax")
        if lmax is not None:
            return Irreps([x for x in self if x.ir.l <= lmax])
        if keep is None and drop is None:
            return self
        sel = keep if keep is not None else drop
        if callable(sel):
            pred: Callable[[MulIr], bool] = sel
        else:
            if isinstance(sel, MulIr):
                sel = [sel.ir]
            elif isinstance(sel, (str, Irrep)):
                sel = Irreps(sel)
            irs = {x.ir if isinstance(x, MulIr) else Irrep(x) for x in sel}

            def pred(x: MulIr) -> bool:
                return x.ir in irs

        want = keep is not None
        return Irreps([x for x in self if bool(pred(x)) == want])

    def D_from_matrix(self, R: torch.Tensor) -> torch.Tensor:
        """Block-diagonal representation matrix ``[..., dim, dim]`` of ``R [..., 3, 3]`` in O(3) (see Irrep)."""
        out = R.new_zeros(*R.shape[:-2], self.dim, self.dim)
        cache: dict[Irrep, torch.Tensor] = {}
        start = 0
        for mul, ir in self:
            if ir not in cache:
                cache[ir] = ir.D_from_matrix(R)
            for _ in range(mul):
                out[..., start : start + ir.dim, start : start + ir.dim] = cache[ir]
                start += ir.dim
        return out
