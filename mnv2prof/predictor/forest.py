"""Every kind's trees walked at once: a network's kernels predicted in one pass of flat arrays.

A forest's own `predict` walks its trees one by one (one scikit-learn call a tree): a network's
60-170 kernels in up to 14 kinds of 120 trees made about 1,700 calls, 12-14 ms a network on the
development machine, over the 10 ms goal (issue 32). `Forests` lays every tree of every kind end
to end in flat arrays, a leaf pointing at itself past an infinite threshold, and walks all the
(tree, kernel) pairs of a network together, a level a step, dropping the pairs that have reached
a leaf. It makes scikit-learn's comparisons (a feature as float32 against the float64 threshold,
`x <= threshold` going left), so it reaches the same leaves: the numbers are scikit-learn's, to
the rounding of the mean (tests/predictor/test_forest.py).

Histogram gradient boosting's trees are walked the same way (float64 features, the leaves
summed onto its baseline): called through scikit-learn, its few hundred trees took 2-4 ms a
kind, and a build that picked it for three kinds predicted in 12.7 ms a network. Any other
regressor is predicted by its own `predict` (fitting.predict_ms).

The build saves the flat arrays (`arrays`, forests.npz in the predictor folder) and `predict`
reads them back (`from_arrays`) with no pickle to unpickle: 0.05 s where unpickling the
scikit-learn models took 1.7 s (60 trees a kind) to 2.6 s (120).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mnv2prof.predictor.fitting import predict_ms

PRUNE_EVERY = 2  # levels walked between drops of the pairs at a leaf
MAX_DEPTH = 4096  # scikit-learn's trees here are 10-35 levels deep
ROOTS, HOW = "roots.", "how."  # forests.npz: kind K's roots "roots.K", its aggregation "how.K"


@dataclass(frozen=True)
class Ensemble:
    """A fitted tree ensemble on log(ms), as the walk reads it."""

    trees: list[tuple]  # per tree: (left, right, feature, threshold, value); a leaf's left -1
    mean: bool  # a forest averages its trees' leaves; boosting adds them to `offset`
    offset: float  # boosting's baseline prediction (0 for a forest)
    float32: bool  # a forest compares features as float32, boosting as float64


def ensemble_of(model: object) -> Ensemble | None:
    """The trees of a forest or of histogram gradient boosting on log(ms) (fitting._on_log),
    else None (predicted by the model's own `predict`)."""
    regressor = getattr(model, "regressor_", None)
    if regressor is None or getattr(model, "inverse_func", None) is not np.exp:
        return None
    trees = getattr(regressor, "estimators_", None)
    if isinstance(trees, list) and trees and all(hasattr(t, "tree_") for t in trees):
        found = []
        for tree in trees:
            state = tree.tree_.__getstate__()  # its node array, one call (not one a field)
            nodes = state["nodes"]
            found.append((nodes["left_child"], nodes["right_child"], nodes["feature"],
                          nodes["threshold"], state["values"][:, 0, 0]))
        return Ensemble(found, True, 0.0, True)
    return _boosting(regressor)


def _boosting(regressor: object) -> Ensemble | None:
    """HistGradientBoostingRegressor's trees (its private `_predictors`: read with care, and
    None where they are not what the walk handles: categories, more than one tree a step)."""
    steps = getattr(regressor, "_predictors", None)
    baseline = np.ravel(getattr(regressor, "_baseline_prediction", []))
    if not steps or len(baseline) != 1 or any(len(step) != 1 for step in steps):
        return None
    found = []
    for (predictor,) in steps:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            return None
        leaf = nodes["is_leaf"].astype(bool)
        found.append((np.where(leaf, -1, nodes["left"].astype(np.intp)),
                      np.where(leaf, -1, nodes["right"].astype(np.intp)),
                      nodes["feature_idx"].astype(np.intp), nodes["num_threshold"],
                      nodes["value"]))
    return Ensemble(found, False, float(baseline[0]), False)


class Forests:
    """The tree ensembles of `models` (kind -> fitted regressor), flattened; `predict` as each
    model's `predict` would, for every kind at once."""

    def __init__(self, models: Mapping[str, object]) -> None:
        self.models: Mapping[str, object] = dict(models)
        self.roots: dict[str, np.ndarray] = {}  # kind -> its trees' root nodes
        self.how: dict[str, np.ndarray] = {}  # kind -> [mean (1/0), offset, float32 (1/0)]
        self.width, start = 1, 0
        parts: list[tuple] = []
        for kind, model in self.models.items():
            found = ensemble_of(model)
            if found is None:
                continue
            self.width = max(self.width, int(model.regressor_.n_features_in_))
            sizes = [len(tree[0]) for tree in found.trees]
            self.roots[kind] = start + np.cumsum([0, *sizes[:-1]], dtype=np.intp)
            parts += found.trees
            start += sum(sizes)
            self.how[kind] = np.array([found.mean, found.offset, found.float32], dtype=np.float64)
        self._flatten(parts)

    def _flatten(self, parts: list[tuple]) -> None:
        counts = np.array([len(p[0]) for p in parts], dtype=np.intp)
        offsets = np.repeat(np.cumsum(counts) - counts, counts)
        left, right, feature, threshold, value = (
            np.concatenate([p[i] for p in parts]) if parts else np.zeros(0) for i in range(5))
        leaf = left == -1
        here = np.arange(len(leaf), dtype=np.intp)
        self.leaf = leaf
        self.feature = np.where(leaf, 0, feature).astype(np.intp)
        self.threshold = np.where(leaf, np.inf, threshold).astype(np.float64)
        children = np.empty((len(leaf), 2), dtype=np.intp)
        children[:, 0] = np.where(leaf, here, left + offsets)
        children[:, 1] = np.where(leaf, here, right + offsets)
        self.children = children.ravel()  # node n's left at 2n, right at 2n + 1
        self.value = value.astype(np.float64)

    def arrays(self) -> dict[str, np.ndarray]:
        """The flat arrays by name, as `from_arrays` reads them (numbers only: no pickle)."""
        found = {"feature": self.feature.astype(np.int32), "threshold": self.threshold,
                 "children": self.children.astype(np.int32), "value": self.value,
                 "width": np.array([self.width], dtype=np.int64)}
        return (found | {ROOTS + kind: roots.astype(np.int32) for kind, roots in self.roots.items()}
                | {HOW + kind: how for kind, how in self.how.items()})

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], models: Mapping[str, object]
                    ) -> Forests:
        """The forests of `arrays` (`Forests.arrays`); `models` (kind -> regressor, read only
        for the kinds whose regressor is not a tree ensemble) may load lazily. ValueError for arrays that do not
        make forests."""
        self = cls.__new__(cls)
        self.models = models
        self.feature = np.asarray(arrays["feature"], dtype=np.intp)
        self.threshold = np.asarray(arrays["threshold"], dtype=np.float64)
        self.children = np.asarray(arrays["children"], dtype=np.intp)
        self.value = np.asarray(arrays["value"], dtype=np.float64)
        self.width = int(arrays["width"][0])
        self.roots = {name.removeprefix(ROOTS): np.asarray(a, dtype=np.intp)
                      for name, a in arrays.items() if name.startswith(ROOTS)}
        self.how = {kind: np.asarray(arrays[HOW + kind], dtype=np.float64)
                    for kind in self.roots}
        if any(how.shape != (3,) for how in self.how.values()):
            raise ValueError("the arrays do not make forests")
        nodes = len(self.feature)
        if not (len(self.threshold) == len(self.value) == nodes and len(self.children) == 2 * nodes
                and all(not a.size or (a.min() >= 0 and a.max() < bound) for a, bound in (
                    (self.children, nodes), (self.feature, self.width),
                    *((r, nodes) for r in self.roots.values())))):
            raise ValueError("the arrays do not make forests")
        self.leaf = self.children[0::2] == np.arange(nodes)
        return self

    def predict(self, rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each kind's predicted ms for its feature rows (`rows[kind]`, one row a kernel)."""
        out = {kind: predict_ms(self.models[kind], np.asarray(x, dtype=float))
               for kind, x in rows.items() if kind not in self.roots and len(x)}
        walked = {kind: np.asarray(x, dtype=float) for kind, x in rows.items()
                  if kind in self.roots and len(x)}
        if walked:
            out.update(self._walk(walked))
        return out

    def _walk(self, rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        total = sum(len(x) for x in rows.values())
        table = np.zeros((total, self.width), dtype=np.float64)
        nodes, bases, blocks, first = [], [], [], 0
        for kind, x in rows.items():  # a forest compares float32 features, boosting float64
            table[first:first + len(x), :x.shape[1]] = (
                x.astype(np.float32) if self.how[kind][2] else x)
            roots = self.roots[kind]
            nodes.append(np.repeat(roots, len(x)))  # tree-major: tree 0's rows, tree 1's, ...
            bases.append(np.tile(np.arange(first, first + len(x)) * self.width, len(roots)))
            blocks.append((kind, len(x), len(roots)))
            first += len(x)
        node, base = np.concatenate(nodes), np.concatenate(bases)
        flat = table.ravel()
        reached = np.empty(len(node), dtype=np.intp)
        pending = np.arange(len(node), dtype=np.intp)
        level = 0
        while len(node):
            if level > MAX_DEPTH:  # only arrays that loop get here: refused, never a hang
                raise ValueError("the arrays do not make forests (a walk deeper than "
                                 f"{MAX_DEPTH} levels)")
            step = flat[base + self.feature[node]] > self.threshold[node]
            node = self.children[2 * node + step]
            level += 1
            if level % PRUNE_EVERY == 0:
                done = self.leaf[node]
                reached[pending[done]] = node[done]
                keep = ~done
                node, base, pending = node[keep], base[keep], pending[keep]
        leaves = self.value[reached]
        out, at = {}, 0
        for kind, n, trees in blocks:
            summed = leaves[at:at + n * trees].reshape(trees, n).sum(axis=0)
            mean, offset, _ = self.how[kind]
            out[kind] = np.exp(summed / trees if mean else offset + summed)
            at += n * trees
        return out
