from __future__ import annotations

import numpy as np
import pytest

from revcli.errors import ConfigError, DataError
from revcli.split import make_split


def _ordered(n: int, k: int, seed: int = 1) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[np.random.default_rng(seed).choice(n, k, replace=False)] = True
    return out


def test_seed_counts_on_the_real_table_shape() -> None:
    split = make_split(_ordered(472_871, 32_313), test_size=0.2, seed=42)
    ordered = _ordered(472_871, 32_313)
    summary = split.summary(ordered)
    assert summary["train_converters"] == 25_850
    assert summary["test_converters"] == 6_463
    assert summary["train_rows"] == 378_296
    assert summary["test_rows"] == 94_575


def test_split_is_a_partition_and_deterministic() -> None:
    ordered = _ordered(10_000, 700)
    a = make_split(ordered, 0.2, 42)
    b = make_split(ordered, 0.2, 42)
    c = make_split(ordered, 0.2, 7)
    assert np.array_equal(a.test, b.test) and a.hash == b.hash
    assert a.hash != c.hash
    assert len(np.intersect1d(a.train, a.test)) == 0
    assert len(a.train) + len(a.test) == 10_000


def test_bad_test_size() -> None:
    with pytest.raises(ConfigError):
        make_split(_ordered(100, 10), test_size=1.5)


def test_too_few_orders() -> None:
    with pytest.raises(DataError, match="no converting session"):
        make_split(_ordered(100, 1), test_size=0.2)


@pytest.mark.parametrize(("n", "rate", "test_size", "seed"),
                         [(1_000, 0.07, 0.2, 42), (12_345, 0.3, 0.25, 0), (997, 0.01, 0.33, 7),
                          (50_000, 0.068, 0.2, 42), (10, 0.3, 0.2, 1)])
def test_the_stratified_split_draws_the_rows_train_test_split_draws(n, rate, test_size,
                                                                    seed) -> None:
    """revcli's split is scikit-learn's, row for row (runs stay comparable to earlier ones and
    to a script that calls train_test_split), only cheaper on millions of rows."""
    from sklearn.model_selection import train_test_split

    ordered = np.random.default_rng(seed).random(n) < rate
    ordered[:2], ordered[-2:] = True, False  # both classes have at least two rows
    train, test = train_test_split(np.arange(n), test_size=test_size, random_state=seed,
                                   stratify=ordered)
    split = make_split(ordered, test_size=test_size, seed=seed)
    np.testing.assert_array_equal(split.test, np.sort(test))
    np.testing.assert_array_equal(split.train, np.sort(train))
