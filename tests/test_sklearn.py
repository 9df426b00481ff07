"""`DigitClassifier`: scikit-learn's estimator checks, and the estimator in a grid search, a
pipeline and cross-validation on scikit-learn's 8x8 digits."""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimator needs the 'sklearn' extra")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from digitlab.sklearn import DigitClassifier  # noqa: E402

EXPECTED_FAILED_CHECKS = {
    "check_methods_sample_order_invariance":
        "float32 matrix products (BLAS) round a row differently with its place in the batch: "
        "probabilities move by about 1e-7 when the rows are shuffled, past the check's rtol of 1e-7",
}


# The checks' data are standardised features, not pixels: pixel_max=1 hands them to the network at
# the scale it is built for (x * 255 / 1, then the recipe's Rescaling(1/255)). Five epochs learn
# the checks' blobs well enough and keep the ~50 checks to a few seconds.
@parametrize_with_checks([DigitClassifier(epochs=5, pixel_max=1.0)],
                         expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits: X float N x 64 (0..16), y int N."""
    return load_digits(return_X_y=True)


def test_grid_search_over_learning_rates(digits):
    X, y = digits
    search = GridSearchCV(DigitClassifier(epochs=3, pixel_max=16), {"lr": [1e-3, 3e-3]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["lr"] in (1e-3, 3e-3)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_score_ > 0.85
    assert search.best_estimator_.model_.input_shape == (64,)


def test_pipeline_and_a_convolutional_recipe(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    pipeline = make_pipeline(MinMaxScaler(), DigitClassifier("digits-cnn", epochs=4, pixel_max=1))
    assert pipeline.fit(X_train, y_train).score(X_test, y_test) > 0.85
    model = pipeline[-1].model_
    assert model.input_shape == (8, 8) and model.output_shape == (10,)  # square images, one output per class


def test_cross_val_score(digits):
    X, y = digits
    scores = cross_val_score(DigitClassifier(epochs=2, pixel_max=16), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8


def test_clone_and_params():
    clf = DigitClassifier("digits-cnn", epochs=2, lr=1e-3, pixel_max=16, seed=3)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() == {
        "recipe": "digits-cnn", "epochs": 2, "batch_size": None, "lr": 1e-3, "pixel_max": 16, "seed": 3}
    assert copy.set_params(lr=3e-3) is copy and copy.lr == 3e-3 and clf.lr == 1e-3
    X, y = np.random.default_rng(0).random((20, 64)) * 16, np.arange(20) % 2
    fitted = clf.fit(X, y)
    assert fitted is clf and not hasattr(clone(clf), "model_")


@pytest.mark.parametrize("labels", [("seven", "three"), (3, 7)])
def test_labels_need_not_be_0_to_9(digits, labels):
    X, y = digits
    keep = (y == 3) | (y == 7)
    X, y = X[keep], np.where(y[keep] == 3, labels[1], labels[0])
    clf = DigitClassifier(epochs=3, pixel_max=16).fit(X, y)
    assert list(clf.classes_) == sorted(labels) and clf.n_features_in_ == 64
    assert clf.model_.output_shape == (2,)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    predicted = clf.predict(X)
    assert set(predicted) <= set(labels) and np.array_equal(predicted, clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.9


def test_mistakes_get_one_clear_message():
    X, y = np.random.default_rng(0).random((12, 10)) * 255, np.arange(12) % 3
    with pytest.raises(ValueError, match=r"^The 'epochs' parameter of DigitClassifier must be a positive integer or None. Got 0 instead.$"):
        DigitClassifier(epochs=0).fit(X, y)
    with pytest.raises(ValueError, match=r"^The 'pixel_max' parameter .* must be a positive number. Got -1 instead.$"):
        DigitClassifier(pixel_max=-1).fit(X, y)
    with pytest.raises(ValueError, match="unknown recipe 'nope'; known: .*mlp"):
        DigitClassifier("nope").fit(X, y)
    with pytest.raises(ValueError, match="recipe 'pure' is trained by the pure-Python engine"):
        DigitClassifier("pure").fit(X, y)
    with pytest.raises(ValueError, match="recipe 'cnn-fast' is convolutional: X must hold square images .* got 10 features"):
        DigitClassifier("cnn-fast").fit(X, y)
    with pytest.raises(ValueError, match="needs at least 2 classes in y; got 1 class"):
        DigitClassifier().fit(X, np.zeros(12, int))
