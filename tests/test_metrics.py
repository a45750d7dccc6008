import numpy as np
import pytest

from scbranch import metrics


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 5)), rng.normal(size=(300, 5)), rng.normal(size=(300, 5)) + 1.0


def test_mmd_and_energy_separate_shifted_from_same(samples):
    a, b, shifted = samples
    assert abs(metrics.mmd_rbf(a, b)) < 0.01 < metrics.mmd_rbf(a, shifted)
    assert metrics.energy_distance(a, b) < 0.05 < metrics.energy_distance(a, shifted)


@pytest.mark.parametrize("clf", ["knn", "linear"])
def test_c2st_auc(samples, clf):
    a, b, shifted = samples
    assert 0.4 < metrics.c2st_auc(a, b, classifier=clf) < 0.6
    assert metrics.c2st_auc(a, shifted, classifier=clf) > 0.75


def test_knn_auc_catches_a_wrong_shape_that_linear_misses():
    rng = np.random.default_rng(1)
    ring = rng.normal(size=(400, 2))
    ring = 3 * ring / np.linalg.norm(ring, axis=1, keepdims=True)
    blob = rng.normal(size=(400, 2))  # same mean, different shape
    assert metrics.c2st_auc(ring, blob, classifier="linear") < 0.6
    assert metrics.c2st_auc(ring, blob, classifier="knn") > 0.8


def test_train_synthetic_test_real(samples):
    a, _, shifted = samples
    z = np.vstack([a, shifted])
    y = np.r_[["a"] * 300, ["s"] * 300]
    res = metrics.train_synthetic_test_real(z, y, z, y, z_train=z, y_train=y)
    assert res["tstr"] == res["trtr"] > 0.6
