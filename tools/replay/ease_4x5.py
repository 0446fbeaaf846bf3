"""EASE by hand, in exact rational arithmetic: the expected weights of
`collaborative::train`'s 4x5 test (python3 tools/replay/ease_4x5.py)."""
from fractions import Fraction as F

X = [[1, 1, 0, 0, 0],
     [1, 1, 1, 0, 0],
     [0, 1, 1, 1, 0],
     [0, 0, 0, 1, 1]]
lam = F(1)
n = 5
G = [[sum(F(X[u][i] * X[u][j]) for u in range(4)) + (lam if i == j else 0)
      for j in range(n)] for i in range(n)]
# Gauss-Jordan inverse.
A = [row[:] + [F(int(i == j)) for j in range(n)] for i, row in enumerate(G)]
for c in range(n):
    p = next(r for r in range(c, n) if A[r][c] != 0)
    A[c], A[p] = A[p], A[c]
    piv = A[c][c]
    A[c] = [x / piv for x in A[c]]
    for r in range(n):
        if r != c and A[r][c] != 0:
            f = A[r][c]
            A[r] = [x - f * y for x, y in zip(A[r], A[c])]
P = [row[n:] for row in A]
B = [[F(0) if i == j else -P[i][j] / P[j][j] for j in range(n)] for i in range(n)]
print("[")
for row in B:
    print("    [" + ", ".join(f"{float(x):.12}" for x in row) + "],")
print("]")
for row in B:
    print("  ", " ".join(str(x) for x in row))
