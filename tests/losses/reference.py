"""Slow, obviously-correct reference implementations of the loss formulas (methods.md §5).

Plain Python floats (double precision) and explicit loops over pairs, triplets, anchors and
proxies; no vectorisation, no PML. Embeddings come in as tensors (any dtype) and are read as floats.
"""

import math
from itertools import product


def rows(x):
    return [[float(v) for v in row] for row in x]


def unit(v):
    n = math.sqrt(sum(a * a for a in v))
    return [a / n for a in v]


def units(x):
    return [unit(v) for v in rows(x)]


def dot(a, b):
    return sum(p * q for p, q in zip(a, b, strict=True))


def dist(a, b):
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(a, b, strict=True)))


def hinge(v):
    return max(v, 0.0)


def mean(values):
    return sum(values) / len(values) if values else 0.0


def nonzero_mean(values):
    return mean([v for v in values if v > 0])


def reduce(values, reduction):
    return mean(values) if reduction == "mean" else nonzero_mean(values)


def points(x, normalize):
    return units(x) if normalize else rows(x)


def query_ref(x, y, ref, ref_y, normalize):
    """(queries, labels, references, labels, same_set): the batch is its own reference when ref is None."""
    q = points(x, normalize)
    if ref is None:
        return q, list(map(int, y)), q, list(map(int, y)), True
    return q, list(map(int, y)), points(ref, normalize), list(map(int, ref_y)), False


def all_pairs(yq, yr, same_set):
    """Ordered (i, j, is_positive) over queries × references, without (i, i) when the sets are one."""
    return [(i, j, yq[i] == yr[j]) for i, j in product(range(len(yq)), range(len(yr))) if not (same_set and i == j)]


def all_triplets(yq, yr, same_set):
    return [
        (a, p, n)
        for a, p, n in product(range(len(yq)), range(len(yr)), range(len(yr)))
        if yr[p] == yq[a] and yr[n] != yq[a] and not (same_set and a == p)
    ]


# ----------------------------------------------------------------------------- pair/triplet losses


def contrastive(x, y, pos_margin, neg_margin, normalize=True, reduction="nonzero_mean", ref=None, ref_y=None):
    q, yq, r, yr, same = query_ref(x, y, ref, ref_y, normalize)
    pos, neg = [], []
    for i, j, positive in all_pairs(yq, yr, same):
        d = dist(q[i], r[j])
        if positive:
            pos.append(hinge(d - pos_margin) ** 2)
        else:
            neg.append(hinge(neg_margin - d) ** 2)
    return reduce(pos, reduction) + reduce(neg, reduction)


def triplet_terms(q, r, triplets, margin, squared):
    def d(a, b):
        v = dist(q[a], r[b])
        return v * v if squared else v

    return [hinge(d(a, p) - d(a, n) + margin) for a, p, n in triplets]


def mine_triplets(q, yq, r, yr, same, margin, squared, mining):
    def d(a, b):
        v = dist(q[a], r[b])
        return v * v if squared else v

    if mining == "all":
        return all_triplets(yq, yr, same)
    if mining == "semihard":
        return [(a, p, n) for a, p, n in all_triplets(yq, yr, same) if 0 < d(a, n) - d(a, p) <= margin]
    chosen = []  # batch-hard: farthest positive, nearest negative
    for a in range(len(q)):
        pos = [p for p in range(len(r)) if yr[p] == yq[a] and not (same and p == a)]
        neg = [n for n in range(len(r)) if yr[n] != yq[a]]
        if pos and neg:
            chosen.append((a, max(pos, key=lambda p: d(a, p)), min(neg, key=lambda n: d(a, n))))
    return chosen


def triplet(x, y, margin, squared, mining, normalize=True, reduction="mean", ref=None, ref_y=None):
    q, yq, r, yr, same = query_ref(x, y, ref, ref_y, normalize)
    chosen = mine_triplets(q, yq, r, yr, same, margin, squared, mining)
    return reduce(triplet_terms(q, r, chosen, margin, squared), reduction)


def triplet_over(x, triplets, margin, squared=False, reduction="mean"):
    """Triplet loss over a given (e.g. sampled) set of (a, p, n) index triplets, normalised embeddings."""
    q = units(x)
    return reduce(triplet_terms(q, q, triplets, margin, squared), reduction)


def margin_loss(x, y, triplets, alpha, beta):
    """Wu et al.: Σ([d_ap − β + α]_+ + [β − d_an + α]_+) / #non-zero terms; beta: float or per-class list."""
    q, y = units(x), list(map(int, y))
    terms = []
    for a, p, n in triplets:
        b = beta if isinstance(beta, float) else beta[y[a]]
        terms += [hinge(dist(q[a], q[p]) - b + alpha), hinge(b - dist(q[a], q[n]) + alpha)]
    active = sum(t > 0 for t in terms)
    return sum(terms) / active if active else 0.0


def npair(anchors, positives, l2_reg, everything):
    """Sohn eq. 3 over (anchor_i, positive_i) rows of distinct classes + λ·mean‖f‖² over ``everything``."""
    a, p = rows(anchors), rows(positives)
    n = len(a)
    total = 0.0
    for i in range(n):
        total += math.log(1 + sum(math.exp(dot(a[i], p[j]) - dot(a[i], p[i])) for j in range(n) if j != i))
    return total / n + l2_reg * mean([dot(f, f) for f in rows(everything)])


def angular(x, y, alpha_degrees, ref=None, ref_y=None):
    q, yq, r, yr, same = query_ref(x, y, ref, ref_y, True)
    t = math.tan(math.radians(alpha_degrees)) ** 2
    terms = []
    for a, p, positive in all_pairs(yq, yr, same):
        if not positive:
            continue
        s = 0.0
        for n in range(len(r)):
            if yr[n] != yq[a]:
                center = [u + v for u, v in zip(q[a], r[p], strict=True)]
                s += math.exp(4 * t * dot(center, r[n]) - 2 * (1 + t) * dot(q[a], r[p]))
        terms.append(math.log(1 + s))
    return mean(terms)


def lifted(x, y, alpha, normalize=True):
    """Song et al. eq. 4: 1/(2|P|) Σ_{unordered positive pairs} [J_ij]_+²."""
    q, y = points(x, normalize), list(map(int, y))
    n = len(q)
    terms = []
    for i in range(n):
        for j in range(i + 1, n):
            if y[i] != y[j]:
                continue
            s = sum(math.exp(alpha - dist(q[i], q[k])) for k in range(n) if y[k] != y[i])
            s += sum(math.exp(alpha - dist(q[j], q[k])) for k in range(n) if y[k] != y[j])
            terms.append(hinge(math.log(s) + dist(q[i], q[j])) ** 2)
    return sum(terms) / (2 * len(terms))


def multi_similarity(x, y, alpha, beta, base, epsilon=None, ref=None, ref_y=None):
    """Wang et al. 2019 with their pair mining when ``epsilon`` is given; mean over all anchors."""
    q, yq, r, yr, same = query_ref(x, y, ref, ref_y, True)
    total = 0.0
    for i in range(len(q)):
        pos = [dot(q[i], r[j]) for j in range(len(r)) if yr[j] == yq[i] and not (same and i == j)]
        neg = [dot(q[i], r[j]) for j in range(len(r)) if yr[j] != yq[i]]
        if epsilon is not None:
            if not pos or not neg:
                continue
            hardest_pos, hardest_neg = min(pos), max(neg)
            pos, neg = [s for s in pos if s - epsilon < hardest_neg], [s for s in neg if s + epsilon > hardest_pos]
        if pos:
            total += math.log(1 + sum(math.exp(-alpha * (s - base)) for s in pos)) / alpha
        if neg:
            total += math.log(1 + sum(math.exp(beta * (s - base)) for s in neg)) / beta
    return total / len(q)


# ----------------------------------------------------------------------------- proxy losses


def cross_entropy(logits, target):
    top = max(logits)
    return -(logits[target] - top - math.log(sum(math.exp(v - top) for v in logits)))


def proxy_nca(x, y, proxies, scale, include_positive=False):
    q, p = units(x), units(proxies)
    total = 0.0
    for i, c in enumerate(map(int, y)):
        logits = [-scale * dist(q[i], p[z]) ** 2 for z in range(len(p))]
        others = [v for z, v in enumerate(logits) if include_positive or z != c]
        total += -(logits[c] - math.log(sum(math.exp(v) for v in others)))
    return total / len(q)


def proxy_anchor(x, y, proxies, alpha, delta):
    q, p, y = units(x), units(proxies), list(map(int, y))
    present = sorted(set(y))
    pos = 0.0
    for c in present:
        pos += math.log(1 + sum(math.exp(-alpha * (dot(q[i], p[c]) - delta)) for i in range(len(q)) if y[i] == c))
    neg = 0.0
    for c in range(len(p)):
        neg += math.log(1 + sum(math.exp(alpha * (dot(q[i], p[c]) + delta)) for i in range(len(q)) if y[i] != c))
    return pos / len(present) + neg / len(p)


def normalized_softmax(x, y, weights, temperature):
    """weights: (C, D) class vectors."""
    q, w = units(x), units(weights)
    return mean(
        [cross_entropy([dot(q[i], w[c]) / temperature for c in range(len(w))], int(t)) for i, t in enumerate(y)]
    )


def soft_triple(x, y, centers, la, gamma, delta, tau):
    """centers: (C, K, D) nested lists/tensor, normalised here."""
    q = units(x)
    cents = [units(class_centers) for class_centers in centers]
    total = 0.0
    for i, target in enumerate(map(int, y)):
        logits = []
        for c, class_centers in enumerate(cents):
            sims = [dot(q[i], w) for w in class_centers]
            top = max(sims)
            weights = [math.exp((s - top) / gamma) for s in sims]
            relaxed = sum(w * s for w, s in zip(weights, sims, strict=True)) / sum(weights)
            logits.append(la * (relaxed - (delta if c == target else 0.0)))
        total += cross_entropy(logits, target)
    value = total / len(q)
    k = len(cents[0])
    if tau and k > 1:
        reg = 0.0
        for class_centers in cents:
            for t in range(k):
                for s in range(t + 1, k):
                    reg += math.sqrt(2 + 1e-5 - 2 * min(dot(class_centers[t], class_centers[s]), 1.0))
        value += tau * reg / (len(cents) * k * (k - 1))
    return value
