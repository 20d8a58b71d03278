"""forest.Forests: every kind's trees walked at once give each model's own `predict`."""

import numpy as np
import pytest

from mnv2prof.predictor.fitting import CANDIDATES, fit_kind
from mnv2prof.predictor.forest import Forests, ensemble_of


def _data(n: int, width: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(1, 100, size=(n, width))
    return x, 0.01 * x[:, 0] * x[:, 1] / x[:, -1] + 0.001


def _own_predict(model, x):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return model.predict(x)


@pytest.fixture(scope="module")
def fitted():
    """Three kinds of different widths, one for each candidate regressor."""
    models, rows = {}, {}
    for (kind, width), name in zip([("conv", 5), ("dwconv", 3), ("add", 2)], CANDIDATES,
                                   strict=True):
        x, y = _data(150, width, len(models))
        models[kind] = fit_kind(kind, x, y, candidates=[name]).model
        rows[kind] = np.vstack([x[:20], _data(15, width, 99)[0]])  # seen rows and new ones
    return models, rows


def test_every_kind_at_once_equals_each_models_predict(fitted):
    models, rows = fitted
    got = Forests(models).predict(rows)
    assert set(got) == set(rows)
    for kind, x in rows.items():
        assert got[kind].shape == (len(x),)
        np.testing.assert_allclose(got[kind], _own_predict(models[kind], x), rtol=1e-12)


def test_forests_and_boosting_are_walked_and_other_models_predict_themselves(fitted):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LinearRegression

    models, rows = fitted
    line = TransformedTargetRegressor(LinearRegression(), func=np.log, inverse_func=np.exp)
    x, y = _data(50, 4, 7)
    forests = Forests({**models, "gemm": line.fit(x, y)})
    assert set(forests.roots) == {"conv", "dwconv", "add"}  # extra trees, forest, boosting
    assert ensemble_of(line) is None
    booster = models["add"].regressor_
    assert len(forests.roots["add"]) == booster.n_iter_
    assert len(forests.roots["conv"]) == len(models["conv"].regressor_.estimators_)
    got = forests.predict({**rows, "gemm": x[:5]})
    np.testing.assert_allclose(got["gemm"], line.predict(x[:5]), rtol=1e-12)
    np.testing.assert_allclose(got["add"], _own_predict(models["add"], rows["add"]), rtol=1e-12)


def test_a_feature_on_a_threshold_goes_where_float32_sends_it(fitted):
    """scikit-learn compares float32 features with float64 thresholds, `<=` going left: a
    feature equal to a root's threshold that float32 rounds up goes right."""
    models, rows = fitted
    trees = [t.tree_ for t in models["conv"].regressor_.estimators_]
    up = [t for t in trees if np.float32(t.threshold[0]) > t.threshold[0]]
    assert len(up) >= 10
    x = np.repeat(rows["conv"][:1], len(up), axis=0)
    for row, tree in zip(x, up, strict=True):
        row[tree.feature[0]] = tree.threshold[0]
    np.testing.assert_allclose(Forests(models).predict({"conv": x})["conv"],
                               _own_predict(models["conv"], x), rtol=1e-12)


def test_kinds_without_rows_or_without_a_model_are_left_out(fitted):
    models, rows = fitted
    got = Forests(models).predict({"conv": rows["conv"][:3], "dwconv": np.zeros((0, 3))})
    assert set(got) == {"conv"} and got["conv"].shape == (3,)
    assert Forests({}).predict({}) == {}


def test_a_tree_that_is_one_leaf():
    x = np.arange(24, dtype=float).reshape(12, 2) + 1
    model = fit_kind("add", x, np.full(12, 0.25), candidates=["forest"]).model
    assert {t.tree_.node_count for t in model.regressor_.estimators_} == {1}
    np.testing.assert_allclose(Forests({"add": model}).predict({"add": x})["add"], 0.25)


def test_saved_arrays_predict_as_the_models_do_without_them(fitted):
    """forests.npz's arrays, read back with no models at all, walk to the same numbers; a
    kind the walk does not read asks its model, and only then."""
    import io

    models, rows = fitted
    buffer = io.BytesIO()
    np.savez(buffer, **Forests(models).arrays())
    buffer.seek(0)
    asked = []

    class Lazy(dict):
        def __getitem__(self, kind):
            asked.append(kind)
            return models[kind]

    with np.load(buffer, allow_pickle=False) as arrays:
        read = Forests.from_arrays(dict(arrays), Lazy())
    got = read.predict(rows)
    assert asked == []
    for kind, x in rows.items():
        np.testing.assert_allclose(got[kind], _own_predict(models[kind], x), rtol=1e-12)
    del read.roots["add"]  # as if boosting were not walked: its model is asked, then only
    np.testing.assert_allclose(read.predict({"add": rows["add"]})["add"],
                               _own_predict(models["add"], rows["add"]), rtol=1e-12)
    assert asked == ["add"]


@pytest.mark.parametrize("damage", [
    lambda a: a.update(children=a["children"] + 10**9),
    lambda a: a.update(feature=a["feature"] + 1000),
    lambda a: a.update(threshold=a["threshold"][:-1]),
    lambda a: a.update({"roots.conv": a["roots.conv"] - 10**9}),
])
def test_arrays_that_do_not_make_forests_are_refused(fitted, damage):
    arrays = Forests(fitted[0]).arrays()
    damage(arrays)
    with pytest.raises(ValueError, match="do not make forests"):
        Forests.from_arrays(arrays, {})


def test_arrays_that_loop_are_refused_not_walked_forever(fitted):
    arrays = Forests(fitted[0]).arrays()
    roots = arrays["roots.conv"]
    children = arrays["children"].copy()
    children[2 * roots[0]:2 * roots[0] + 2] = roots[0]  # the first root points at itself...
    arrays["children"] = children
    arrays["threshold"] = arrays["threshold"].copy()
    arrays["threshold"][roots[0]] = -np.inf  # ...and is no leaf: every row goes right, to it
    forests = Forests.from_arrays(arrays, {})
    forests.leaf[roots[0]] = False
    with pytest.raises(ValueError, match="deeper than"):
        forests.predict({"conv": fitted[1]["conv"][:2]})
