"""scikit-learn's own estimator checks over fastbp's MLPClassifier and MLPRegressor.

Every check runs and none is expected to fail: scikit-learn marks none of them for
its own MLPs either (sklearn/utils/_test_common/instance_generator.py). As scikit-learn
does for its MLPs, the instances train for at most 100 epochs to keep the module fast.
They are float64 because the checks compare fits at rtol=1e-7, finer than float32's
resolution (tests/test_sklearn.py checks the float32 default with a float32 tolerance).
"""

import warnings

import pytest

pytest.importorskip("sklearn", minversion="1.6")

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastbp.sklearn import MLPClassifier, MLPRegressor

CHECKED = [
    MLPClassifier(max_iter=100, random_state=0, dtype="float64", n_threads=1),
    MLPRegressor(max_iter=100, random_state=0, dtype="float64", n_threads=1),
]


def _checks(estimators):
    """parametrize_with_checks(estimators), its checks listed at once so that
    scikit-learn's note on estimators that duck-type BaseEstimator (fastbp.sklearn
    imports without scikit-learn, so it cannot inherit from it) is silenced here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"Estimator MLP\w+ does not inherit from `sklearn.base.BaseEstimator`",
            category=UserWarning,
        )
        decorator = parametrize_with_checks(estimators)
        names, values = decorator.args
        return pytest.mark.parametrize(names, list(values), **decorator.kwargs)


@_checks(CHECKED)
def test_sklearn_estimator_check(estimator, check):
    with warnings.catch_warnings():
        # a 100-epoch budget on the checks' small data sets stops short of convergence,
        # as it does for scikit-learn's own MLPs in these checks
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("estimator", CHECKED, ids=lambda est: type(est).__name__)
def test_dataframe_column_names_consistency(estimator):
    """The check scikit-learn runs on its own estimators besides the ones above: names
    kept from a DataFrame, scikit-learn's warnings and errors on other columns, and no
    warning that the estimator 'was fitted without feature names' along the way."""
    pytest.importorskip("pandas")
    from sklearn.utils.estimator_checks import check_dataframe_column_names_consistency

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_dataframe_column_names_consistency(type(estimator).__name__, estimator)
    for warning in record:
        assert "was fitted without feature names" not in str(warning.message)
