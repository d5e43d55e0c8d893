#!/usr/bin/env python3
"""Generates Sources/CKernels/winograd_transforms.h: the 1-D tile transforms of Winograd
F(5×5, 3×3) and F(6×6, 3×3) and their weight matrices G, from exact rational arithmetic.

    python3 tools/winograd_transforms.py > Sources/CKernels/winograd_transforms.h

Construction (Toom-Cook, as in Lavin & Gray 2016): for interpolation points p_0 … p_{n−2} and
∞ (n = m + 2), with V the n×n Vandermonde matrix of the points (∞'s row selects the leading
coefficient) and Va, Vb its first m and 3 columns, the correlation y = Aᵀ[(G g) ⊙ (Bᵀ d)] has
Aᵀ = Vaᵀ, G = Vb, Bᵀ = (V⁻¹)ᵀ. Each row of Bᵀ is then scaled to coprime integers and the
inverse scale moved into the same row of G, so the transforms that run on every tile multiply
only by small integers (Bᵀ) and powers of two (Aᵀ), which float32 represents exactly, and every
inexact constant (1/90, 16/45, …) sits in G, which the weight transform applies in double once
per layer.

Points: F(6×6): 0, ±1, ±2, ±1/2, ∞; F(5×5): ±1, ±2, ±1/2, ∞ (symmetric without 0, so every
row pairs with its mirror: rows for ±p share their even and odd partial sums). A float32
emulation (`tools/compare_occlusion.py --winograd-error`) puts their per-layer error at
8.3–15.1× (F5) and 11.4–19.8× (F6) a direct dot product's over 64–256 channels, against
5.7–10.4× for F(4×4).
"""
from __future__ import annotations

import math
import sys
from fractions import Fraction as F

POINTS = {
    5: [F(1), F(-1), F(2), F(-2), F(1, 2), F(-1, 2)],
    6: [F(0), F(1), F(-1), F(2), F(-2), F(1, 2), F(-1, 2)],
}


def matrices(points: list[F], m: int, r: int = 3):
    n = m + r - 1
    assert len(points) == n - 1

    def vandermonde(cols: int) -> list[list[F]]:
        rows = [[p**k for k in range(cols)] for p in points]
        rows.append([F(0)] * (cols - 1) + [F(1)])
        return rows

    va, vb, v = vandermonde(m), vandermonde(r), vandermonde(n)
    # Exact inverse of v by Gauss-Jordan elimination.
    aug = [row[:] + [F(int(i == j)) for j in range(n)] for i, row in enumerate(v)]
    for col in range(n):
        pivot = next(i for i in range(col, n) if aug[i][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        scale = aug[col][col]
        aug[col] = [x / scale for x in aug[col]]
        for i in range(n):
            if i != col and aug[i][col] != 0:
                factor = aug[i][col]
                aug[i] = [a - factor * b for a, b in zip(aug[i], aug[col])]
    inverse = [row[n:] for row in aug]
    bt = [[inverse[j][i] for j in range(n)] for i in range(n)]
    at = [[va[j][i] for j in range(n)] for i in range(m)]
    g = [row[:] for row in vb]
    for i in range(n):
        denominator = math.lcm(*[x.denominator for x in bt[i]])
        numerator = math.gcd(*[(x * denominator).numerator for x in bt[i]])
        scale = F(denominator, numerator)
        bt[i] = [x * scale for x in bt[i]]
        g[i] = [x / scale for x in g[i]]
    return at, g, bt


def literal(x: F) -> str:
    value = float(x)
    assert value == x, "transform coefficients must be exact in float32"
    return f"{value:.1f}f" if value == int(value) else f"{value!r}f"


def combination(coefficients: list[F], names: list[str]) -> str:
    """Σ c_j·name_j over the nonzero c_j, summed left to right."""
    expression = ""
    for c, name in zip(coefficients, names):
        if c == 0:
            continue
        term = name if abs(c) == 1 else f"{literal(abs(c))} * {name}"
        if not expression:
            expression = term if c > 0 else f"-{term}" if abs(c) == 1 else f"{literal(c)} * {name}"
        else:
            expression = f"({expression}) {'+' if c > 0 else '-'} {term}" if "(" in expression or " " in expression \
                else f"{expression} {'+' if c > 0 else '-'} {term}"
    return expression or "0.0f"


def mirror_pairs(points: list[F]) -> list[tuple[int, int]]:
    return [(i, points.index(-p)) for i, p in enumerate(points) if p > 0 and -p in points]


def input_transform(m: int, points: list[F], bt: list[list[F]]) -> list[str]:
    n = m + 2
    names = [f"d{j}" for j in range(n)]
    lines = [f"// Bᵀ of F({m}×{m}, 3×3): the n = {n} values d[j·ds] → r[i·rs]. Rows for ±p share their even",
             "// and odd partial sums.",
             f"EK_ALWAYS_INLINE void winograd_in_{m}(const float *d, int64_t ds, float *r, int64_t rs) {{",
             "    const float " + ", ".join(f"d{j} = d[{j} * ds]" for j in range(n)) + ";"]
    done = set()
    for plus, minus in mirror_pairs(points):
        a, b = bt[plus], bt[minus]
        sign = None
        for j in range(n):
            for s in (1, -1):
                if a[j] != 0 and b[j] == s * (-1) ** j * a[j]:
                    sign = s if sign is None else sign
        assert sign is not None and all(b[j] == sign * (-1) ** j * a[j] for j in range(n))
        even = combination([a[j] if j % 2 == 0 else F(0) for j in range(n)], names)
        odd = combination([a[j] if j % 2 == 1 else F(0) for j in range(n)], names)
        p = points[plus]
        lines += [f"    {{  // points ±{p}",
                  f"        const float even = {even}, odd = {odd};",
                  f"        r[{plus} * rs] = even + odd;",
                  f"        r[{minus} * rs] = {'even - odd' if sign == 1 else 'odd - even'};",
                  "    }"]
        done |= {plus, minus}
    for i in range(n):
        if i not in done:
            label = "∞" if i == n - 1 else str(points[i])
            lines.append(f"    r[{i} * rs] = {combination(bt[i], names)};  // point {label}")
    lines.append("}")
    return lines


def output_transform(m: int, points: list[F], at: list[list[F]]) -> list[str]:
    n = m + 2
    pairs = mirror_pairs(points)
    lines = [f"// Aᵀ of F({m}×{m}, 3×3): the n = {n} products s[j·ss] → the m = {m} outputs o[i·os].",
             f"EK_ALWAYS_INLINE void winograd_out_{m}(const float *s, int64_t ss, float *o, int64_t os) {{",
             "    const float " + ", ".join(f"s{j} = s[{j} * ss]" for j in range(n)) + ";"]
    sums = []
    for plus, minus in pairs:
        sums.append(f"sum{plus} = s{plus} + s{minus}, diff{plus} = s{plus} - s{minus}")
    lines.append("    const float " + ", ".join(sums) + ";")
    paired = {i for pair in pairs for i in pair}
    for i in range(m):
        terms, names = [], []
        for j in range(n - 1):
            if j in paired:
                continue
            terms.append(at[i][j]); names.append(f"s{j}")
        for plus, _ in pairs:
            terms.append(at[i][plus]); names.append(f"{'sum' if i % 2 == 0 else 'diff'}{plus}")
        terms.append(at[i][n - 1]); names.append(f"s{n - 1}")
        lines.append(f"    o[{i} * os] = {combination(terms, names)};")
    lines.append("}")
    return lines


def main() -> None:
    out = ["// Generated by tools/winograd_transforms.py; do not edit. The 1-D transforms of Winograd",
           "// F(5×5, 3×3) and F(6×6, 3×3) (see that script for the construction and the points), applied",
           "// down and across each tile by winograd.c, and their weight matrices G in double.",
           "#ifndef EK_WINOGRAD_TRANSFORMS_H",
           "#define EK_WINOGRAD_TRANSFORMS_H",
           ""]
    for m, points in POINTS.items():
        at, g, bt = matrices(points, m)
        out += input_transform(m, points, bt) + [""] + output_transform(m, points, at) + [""]
        out.append(f"// G of F({m}×{m}, 3×3), rows scaled to match winograd_in_{m}: U = G g Gᵀ.")
        out.append(f"static const double winograd_g_{m}[{m + 2}][3] = {{")
        for row in g:
            out.append("    {" + ", ".join(f"{x.numerator}.0 / {x.denominator}.0" if x.denominator != 1
                                           else f"{x.numerator}.0" for x in row) + "},")
        out += ["};", ""]
    out.append("#endif")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
