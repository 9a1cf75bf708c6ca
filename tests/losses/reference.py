"""Slow, obviously-correct reference implementations of the loss formulas (float64 loops)."""

import math
from itertools import product

import torch


def unit(x):
    return x / x.norm(dim=1, keepdim=True)


def dist(a, b):
    return float((a - b).norm())


def contrastive(x, y, margin):
    x = unit(x)
    pos, neg = [], []
    for i, j in product(range(len(x)), repeat=2):
        if i == j:
            continue
        d = dist(x[i], x[j])
        (pos.append(d**2) if y[i] == y[j] else neg.append(max(margin - d, 0.0) ** 2))
    return sum(pos) / len(pos) + sum(neg) / len(neg)


def triplets(y):
    n = len(y)
    return [(a, p, q) for a, p, q in product(range(n), repeat=3) if a != p and y[a] == y[p] and y[q] != y[a]]


def triplet(x, y, margin, squared=False, mining="all"):
    x = unit(x)

    def d(i, j):
        v = dist(x[i], x[j])
        return v * v if squared else v

    if mining == "hard":
        losses = []
        for a in range(len(x)):
            pos = [d(a, p) for p in range(len(x)) if p != a and y[p] == y[a]]
            neg = [d(a, q) for q in range(len(x)) if y[q] != y[a]]
            if pos and neg:
                losses.append(max(max(pos) - min(neg) + margin, 0.0))
        return sum(losses) / len(losses)
    chosen = triplets(y)
    if mining == "semihard":
        chosen = [(a, p, q) for a, p, q in chosen if d(a, p) < d(a, q) < d(a, p) + margin]
    losses = [max(d(a, p) - d(a, q) + margin, 0.0) for a, p, q in chosen]
    return sum(losses) / len(losses) if losses else 0.0


def npair(anchors, positives, l2_reg, everything):
    n = len(anchors)
    total = 0.0
    for i in range(n):
        inner = sum(math.exp(float(anchors[i] @ positives[j] - anchors[i] @ positives[i])) for j in range(n) if j != i)
        total += math.log(1 + inner)
    return total / n + l2_reg * float((everything**2).sum(1).mean())


def lifted(x, y, alpha):
    x = unit(x)
    n = len(x)
    terms = []
    for i in range(n):
        for j in range(i + 1, n):
            if y[i] != y[j]:
                continue
            s = sum(math.exp(alpha - dist(x[i], x[k])) for k in range(n) if y[k] != y[i])
            s += sum(math.exp(alpha - dist(x[j], x[k])) for k in range(n) if y[k] != y[j])
            terms.append(max(math.log(s) + dist(x[i], x[j]), 0.0) ** 2)
    return sum(terms) / (2 * len(terms))


def multi_similarity(x, y, alpha, beta, base):
    x = unit(x)
    total = 0.0
    for i in range(len(x)):
        pos = [float(x[i] @ x[j]) for j in range(len(x)) if j != i and y[j] == y[i]]
        neg = [float(x[i] @ x[j]) for j in range(len(x)) if y[j] != y[i]]
        total += math.log(1 + sum(math.exp(-alpha * (s - base)) for s in pos)) / alpha
        total += math.log(1 + sum(math.exp(beta * (s - base)) for s in neg)) / beta
    return total / len(x)


def proxy_anchor(x, y, proxies, alpha, delta):
    x, p = unit(x), unit(proxies)
    present = sorted(set(y.tolist()))
    pos = sum(
        math.log(1 + sum(math.exp(-alpha * (float(x[i] @ p[c]) - delta)) for i in range(len(x)) if y[i] == c))
        for c in present
    ) / len(present)
    neg = sum(
        math.log(1 + sum(math.exp(alpha * (float(x[i] @ p[c]) + delta)) for i in range(len(x)) if y[i] != c))
        for c in range(len(p))
    ) / len(p)
    return pos + neg


def proxy_nca(x, y, proxies, scale):
    x, p = unit(x), unit(proxies)
    total = 0.0
    for i in range(len(x)):
        logits = [-scale * dist(x[i], p[c]) ** 2 for c in range(len(p))]
        total += -(logits[int(y[i])] - math.log(sum(math.exp(v) for v in logits)))
    return total / len(x)


def normalized_softmax(x, y, weights, temperature):
    x, w = unit(x), unit(weights)
    total = 0.0
    for i in range(len(x)):
        logits = [float(x[i] @ w[c]) / temperature for c in range(len(w))]
        total += -(logits[int(y[i])] - math.log(sum(math.exp(v) for v in logits)))
    return total / len(x)


def margin(x, y, alpha, beta):
    x = unit(x)
    pos, neg = [], []
    for a, p, q in triplets(y):
        pos.append(max(dist(x[a], x[p]) - beta + alpha, 0.0))
        neg.append(max(beta - dist(x[a], x[q]) + alpha, 0.0))
    active = sum(v > 0 for v in pos) + sum(v > 0 for v in neg)
    return (sum(pos) + sum(neg)) / active


def soft_triple(x, y, centers, la, gamma, delta):
    """centers: (C, K, D) unit vectors."""
    x = unit(x)
    total = 0.0
    for i in range(len(x)):
        logits = []
        for c in range(centers.shape[0]):
            sims = [float(x[i] @ centers[c, k]) for k in range(centers.shape[1])]
            weights = torch.softmax(torch.tensor(sims, dtype=torch.float64) / gamma, 0).tolist()
            s = sum(w * v for w, v in zip(weights, sims, strict=True))
            logits.append(la * (s - (delta if c == int(y[i]) else 0.0)))
        total += -(logits[int(y[i])] - math.log(sum(math.exp(v) for v in logits)))
    return total / len(x)


def angular(x, y, alpha_degrees):
    x = unit(x)
    t = math.tan(math.radians(alpha_degrees)) ** 2
    terms = []
    for a, p in product(range(len(x)), repeat=2):
        if a == p or y[a] != y[p]:
            continue
        negs = [n for n in range(len(x)) if y[n] != y[a]]
        s = sum(math.exp(4 * t * float((x[a] + x[p]) @ x[n]) - 2 * (1 + t) * float(x[a] @ x[p])) for n in negs)
        terms.append(math.log(1 + s))
    return sum(terms) / len(terms)
