"""Drift statistics: equal to scipy's, decided on effect sizes, and sane at the edges."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import chi2_contingency, false_discovery_control, ks_2samp, wasserstein_distance

from pipelines.drift import (
    DriftInputError,
    DriftThresholds,
    benjamini_hochberg,
    compute_drift,
    ks_wasserstein_sorted,
)

pytestmark = pytest.mark.unit

REQUIRED_FEATURE_KEYS = {
    "kind",
    "psi",
    "ks_statistic",
    "ks_pvalue",
    "wasserstein",
    "wasserstein_normalized",
    "chi2_pvalue",
    "js_distance",
    "drifted",
    "reason",
    "n_reference",
    "n_current",
    "null_rate_reference",
    "null_rate_current",
}


def normal_frames(
    seed: int, *, n: int = 5000, features: int = 10, shift: float = 0.0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Reference and current from the same normals; ``shift`` (in sd) moves f0 in current."""
    rng = np.random.default_rng(seed)
    reference = {f"f{i}": rng.normal(size=n) for i in range(features)}
    current = {f"f{i}": rng.normal(size=n) for i in range(features)}
    current["f0"] = current["f0"] + shift
    return reference, current


def strict_json(report: Any) -> Any:
    """The report survives JSON without NaN/inf: the verdict never rests on a NaN."""
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))


# ------------------------------------------------------------------ equal to scipy


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        pytest.param(
            np.random.default_rng(1).normal(size=20_000),
            np.random.default_rng(2).normal(0.05, 1.1, size=15_000),
            id="continuous-large",
        ),
        pytest.param(
            np.random.default_rng(3).integers(0, 8, size=3000).astype(float),
            np.random.default_rng(4).integers(0, 10, size=2500).astype(float),
            id="discrete-with-ties",
        ),
        pytest.param(
            np.random.default_rng(5).exponential(size=700),
            np.random.default_rng(6).exponential(1.3, size=450),
            id="skewed-unequal-sizes",
        ),
    ],
)
def test_ks_and_wasserstein_equal_scipy_on_the_same_data(
    reference: np.ndarray, current: np.ndarray
) -> None:
    report = compute_drift({"x": reference}, {"x": current})
    feature = report.feature("x")
    expected = ks_2samp(reference, current)  # the default method: exact up to 10,000 per side

    assert feature.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert feature.ks_pvalue == pytest.approx(expected.pvalue, abs=1e-6)
    assert feature.wasserstein == pytest.approx(wasserstein_distance(reference, current), rel=1e-9)
    assert feature.wasserstein_normalized == pytest.approx(
        wasserstein_distance(reference, current) / np.std(reference), rel=1e-9
    )


def test_ks_pvalue_equals_scipy_default_method_above_ten_thousand_rows() -> None:
    rng = np.random.default_rng(7)
    reference, current = rng.normal(size=12_000), rng.normal(0.03, 1, size=11_000)

    feature = compute_drift({"x": reference}, {"x": current}).feature("x")

    assert feature.ks_pvalue == pytest.approx(ks_2samp(reference, current).pvalue, rel=1e-9)


def test_kernel_matches_scipy_on_many_small_tied_samples() -> None:
    rng = np.random.default_rng(8)
    for _ in range(300):
        n, m = rng.integers(1, 60, size=2)
        a = np.sort(rng.integers(0, rng.integers(1, 12), size=n).astype(float))
        b = np.sort(rng.integers(0, 9, size=m).astype(float))
        statistic, distance = ks_wasserstein_sorted(a, b)
        # bit-identical to scipy's own evaluation; its "exact" mode re-rounds d to a lattice
        assert statistic == ks_2samp(a, b, method="asymp").statistic
        assert statistic == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
        assert distance == pytest.approx(wasserstein_distance(a, b), rel=1e-12, abs=1e-15)


def test_chi2_pvalue_equals_scipy_chi2_contingency_and_js_equals_scipy_jensenshannon() -> None:
    rng = np.random.default_rng(9)
    reference = rng.choice(["a", "b", "c", "d"], size=4000, p=[0.4, 0.3, 0.2, 0.1])
    current = rng.choice(["a", "b", "c", "d"], size=3000, p=[0.35, 0.3, 0.2, 0.15])
    ref_counts = [int((reference == c).sum()) for c in "abcd"]
    cur_counts = [int((current == c).sum()) for c in "abcd"]

    feature = compute_drift({"city": reference}, {"city": current}).feature("city")

    assert feature.chi2_pvalue == pytest.approx(
        chi2_contingency([ref_counts, cur_counts]).pvalue, rel=1e-9
    )
    assert feature.js_distance == pytest.approx(
        jensenshannon(ref_counts, cur_counts, base=2), rel=1e-9
    )


def test_chi2_with_two_categories_uses_scipys_default_yates_correction() -> None:
    reference = np.array(["yes"] * 130 + ["no"] * 120)
    current = np.array(["yes"] * 150 + ["no"] * 100)

    feature = compute_drift({"flag": reference}, {"flag": current}).feature("flag")

    assert feature.chi2_pvalue == pytest.approx(
        chi2_contingency([[130, 120], [150, 100]]).pvalue, rel=1e-9
    )


def test_categorical_psi_is_the_symmetrised_kl_divergence_of_the_shares() -> None:
    reference = np.array(["a"] * 500 + ["b"] * 500)
    current = np.array(["a"] * 900 + ["b"] * 100)

    feature = compute_drift({"c": reference}, {"c": current}).feature("c")

    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert feature.psi == pytest.approx(float(np.sum(rel_entr(q, p) + rel_entr(p, q))), rel=1e-9)


def test_benjamini_hochberg_equals_scipy_false_discovery_control() -> None:
    pvalues = np.random.default_rng(10).uniform(size=25) ** 3

    assert benjamini_hochberg(list(pvalues)) == pytest.approx(
        list(false_discovery_control(pvalues)), rel=1e-12
    )


# ------------------------------------------------------------------ decision behaviour


@pytest.mark.slow  # ~3 s idle, over 5 s when the 2 cores are shared
def test_same_distribution_raises_drift_in_at_most_5_percent_of_100_seeds() -> None:
    alarms = sum(compute_drift(*normal_frames(seed)).drift_detected for seed in range(100))

    assert alarms <= 5


@pytest.mark.slow  # ~3 s idle, over 5 s when the 2 cores are shared
def test_half_sigma_shift_on_one_feature_is_flagged_in_at_least_95_percent_of_seeds() -> None:
    flagged = 0
    for seed in range(100):
        report = compute_drift(*normal_frames(seed, shift=0.5))
        flagged += report.feature("f0").drifted
        assert report.drifted_features in ([], ["f0"])

    assert flagged >= 95


def test_at_min_samples_noise_rarely_flags_any_feature_because_of_the_fdr_gate() -> None:
    # At n=200 the KS statistic of same-distribution samples tops 0.1 about 20% of the time;
    # the Benjamini-Hochberg gate keeps feature-level false flags near the 5% rate.
    any_flagged = sum(
        bool(compute_drift(*normal_frames(seed, n=200, features=5)).drifted_features)
        for seed in range(100)
    )

    assert any_flagged <= 10


def test_negligible_shift_at_large_n_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.normal(size=200_000), rng.normal(0.03, 1, size=200_000)

    feature = compute_drift({"x": reference}, {"x": current}).feature("x")

    assert feature.ks_pvalue is not None and feature.ks_pvalue < 1e-6
    assert feature.status == "no_drift"


def test_scale_change_is_caught_by_normalised_wasserstein() -> None:
    rng = np.random.default_rng(12)
    reference, current = rng.normal(size=5000), rng.normal(0, 1.6, size=5000)

    feature = compute_drift({"x": reference}, {"x": current}).feature("x")

    assert feature.drifted
    assert "Wasserstein" in feature.reason


def test_share_of_drifted_features_decides_the_report() -> None:
    rng = np.random.default_rng(13)
    reference = {f"f{i}": rng.normal(size=1000) for i in range(10)}
    current = {f"f{i}": rng.normal(1.0 if i < 3 else 0.0, 1, size=1000) for i in range(10)}

    report = compute_drift(reference, current)

    assert report.drifted_features == ["f0", "f1", "f2"]
    assert report.drifted_share == pytest.approx(0.3)
    assert report.verdict == "drift" and report.drift_detected


def test_prediction_drift_alone_raises_drift_and_uses_prediction_psi() -> None:
    rng = np.random.default_rng(14)
    reference = pd.DataFrame({"x": rng.normal(size=2000), "proba": rng.beta(2, 5, size=2000)})
    current = pd.DataFrame({"x": rng.normal(size=2000), "proba": rng.beta(5, 2, size=2000)})

    report = compute_drift(reference, current, prediction="proba")
    document = strict_json(report)

    assert list(document["features"]) == ["x"]
    assert document["prediction"]["name"] == "proba"
    assert document["prediction"]["drifted"] is True
    assert document["verdict"] == "drift"
    assert "PSI" in document["prediction"]["reason"]


def test_prediction_psi_threshold_is_separate_from_feature_psi() -> None:
    rng = np.random.default_rng(15)
    reference = {"x": rng.normal(size=3000), "score": rng.normal(size=3000)}
    current = {"x": rng.normal(size=3000), "score": rng.normal(0.45, 1, size=3000)}
    strict = DriftThresholds(prediction_psi=0.05, ks_statistic=0.9, wasserstein_normalized=5)
    loose = DriftThresholds(prediction_psi=5.0, ks_statistic=0.9, wasserstein_normalized=5)

    assert compute_drift(reference, current, prediction="score", thresholds=strict).drift_detected
    assert not compute_drift(
        reference, current, prediction="score", thresholds=loose
    ).drift_detected


def test_report_dict_has_the_documented_keys_and_is_strict_json() -> None:
    rng = np.random.default_rng(16)
    reference = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    current = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})

    document = strict_json(compute_drift(reference, current))

    assert {"features", "drifted_share", "drift_detected", "prediction", "verdict"} <= set(document)
    assert document["insufficient_data"] == []
    assert document["verdict"] in {"drift", "no_drift", "insufficient_data"}
    for feature in document["features"].values():
        assert set(feature) >= REQUIRED_FEATURE_KEYS
    assert document["features"]["x"]["js_distance"] is None
    assert document["features"]["c"]["ks_statistic"] is None


def test_dict_of_arrays_and_dataframe_give_the_same_report() -> None:
    reference, current = normal_frames(17, n=800, features=3, shift=0.3)

    from_dicts = compute_drift(reference, current).to_dict()
    from_frames = compute_drift(pd.DataFrame(reference), pd.DataFrame(current)).to_dict()

    assert from_dicts == from_frames


def test_kinds_are_inferred_from_reference_dtypes_and_dates_are_ignored() -> None:
    rng = np.random.default_rng(18)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=300),
            "count": rng.integers(0, 5, size=300),
            "flag": rng.integers(0, 2, size=300).astype(bool),
            "city": rng.choice(["a", "b"], size=300),
            "seen": pd.date_range("2026-01-01", periods=300, freq="h"),
        }
    )

    report = compute_drift(frame, frame)

    kinds = {feature.name: feature.kind for feature in report.features}
    assert kinds == {
        "amount": "numeric",
        "count": "numeric",
        "flag": "categorical",
        "city": "categorical",
    }
    assert report.ignored_columns == ("seen",)


def test_explicit_spec_overrides_inference() -> None:
    codes = np.random.default_rng(19).integers(0, 4, size=400)

    feature = compute_drift(
        {"code": codes}, {"code": codes}, features={"code": "categorical"}
    ).feature("code")

    assert feature.kind == "categorical"
    assert feature.chi2_pvalue == pytest.approx(1.0)


# ------------------------------------------------------------------ edge cases


def test_too_few_rows_is_insufficient_data_never_drift_however_large_the_shift() -> None:
    for seed in range(20):
        reference, current = normal_frames(seed, n=150, features=4, shift=0.0)
        current = {name: values + 5.0 for name, values in current.items()}

        report = compute_drift(reference, current)

        assert report.verdict == "insufficient_data"
        assert not report.drift_detected
        assert report.drifted_features == []
        assert report.insufficient_data == ["f0", "f1", "f2", "f3"]
        strict_json(report)


def test_min_samples_boundary_is_rows_on_each_side() -> None:
    reference, current = normal_frames(20, n=400, features=1)
    shifted = {"f0": current["f0"][:200] + 3.0}
    short = {"f0": current["f0"][:199] + 3.0}

    assert compute_drift(reference, shifted).verdict == "drift"
    assert compute_drift(reference, short).verdict == "insufficient_data"


def test_undecided_features_that_could_tip_the_share_make_the_verdict_insufficient() -> None:
    rng = np.random.default_rng(21)
    reference = {"a": rng.normal(size=1000), "b": rng.normal(size=1000)}
    current = {"a": rng.normal(size=1000), "b": np.where(rng.uniform(size=1000) < 0.85, np.nan, 0)}
    reference["b"] = np.where(rng.uniform(size=1000) < 0.85, np.nan, rng.normal(size=1000))

    report = compute_drift(reference, current)

    assert report.feature("b").status == "insufficient_data"
    assert report.verdict == "insufficient_data"
    assert "non-null values" in report.feature("b").reason


def test_all_null_in_current_is_drift_with_a_clear_reason() -> None:
    rng = np.random.default_rng(22)
    reference = {"x": rng.normal(size=500), "c": rng.choice(["a", "b"], size=500).astype(object)}
    current = {"x": np.full(500, np.nan), "c": np.full(500, None, dtype=object)}

    report = compute_drift(reference, current)
    document = strict_json(report)

    for name in ("x", "c"):
        assert document["features"][name]["drifted"] is True
        assert document["features"][name]["reason"] == "all values null in current"
        assert document["features"][name]["null_rate_current"] == 1.0
    assert document["verdict"] == "drift"


def test_all_null_in_reference_is_drift_and_all_null_on_both_sides_lacks_data() -> None:
    rng = np.random.default_rng(23)
    reference = {"x": np.full(500, np.nan), "y": np.full(500, np.nan), "z": rng.normal(size=500)}
    current = {"x": rng.normal(size=500), "y": np.full(500, np.nan), "z": rng.normal(size=500)}

    report = compute_drift(reference, current)
    strict_json(report)

    assert report.feature("x").drifted
    assert report.feature("x").reason == "all values null in reference"
    assert report.feature("y").status == "insufficient_data"  # no evidence either way
    assert report.feature("y").reason == "all values null in reference and current"


@pytest.mark.filterwarnings("error")
def test_constant_feature_divides_by_nothing_and_drifts_only_when_current_moves() -> None:
    rng = np.random.default_rng(24)
    reference = {"k": np.full(1000, 3.0)}

    same = compute_drift(reference, {"k": np.full(1000, 3.0)}).feature("k")
    moved = compute_drift(reference, {"k": rng.normal(3.0, 1.0, size=1000)}).feature("k")

    assert same.status == "no_drift"
    assert same.psi == pytest.approx(0.0)
    assert same.wasserstein == 0.0
    assert same.wasserstein_normalized is None
    assert moved.drifted
    assert moved.wasserstein_normalized is None
    assert moved.psi is not None and np.isfinite(moved.psi)


def test_feature_missing_from_current_is_reported_and_counts_as_drifted() -> None:
    reference, current = normal_frames(25, n=500, features=3)
    del current["f2"]

    report = compute_drift(reference, current)
    document = strict_json(report)

    assert document["features"]["f2"]["drifted"] is True
    assert document["features"]["f2"]["reason"] == "missing from current"
    assert document["features"]["f2"]["n_current"] == 0
    assert document["missing_features"] == ["f2"]
    assert report.drifted_share == pytest.approx(1 / 3)
    assert report.verdict == "drift"


def test_category_never_seen_in_reference_is_drift_on_that_feature() -> None:
    rng = np.random.default_rng(26)
    reference = {"city": rng.choice(["paris", "rome"], size=5000)}
    current = {"city": np.concatenate([rng.choice(["paris", "rome"], size=4990), ["oslo"] * 10])}

    feature = compute_drift(reference, current).feature("city")

    assert feature.drifted
    assert feature.new_categories == ("oslo",)
    assert "'oslo'" in feature.reason


def test_categories_compare_as_strings_across_file_types() -> None:
    values = np.random.default_rng(27).integers(0, 3, size=600)

    feature = compute_drift(
        {"code": values}, {"code": values.astype(str)}, features={"code": "categorical"}
    ).feature("code")

    assert feature.new_categories == ()
    assert feature.status == "no_drift"


def test_infinities_are_excluded_from_ks_and_counted_separately() -> None:
    rng = np.random.default_rng(28)
    reference = rng.normal(size=2000)
    current = rng.normal(size=2000)
    current[:10] = np.inf
    current[10:15] = -np.inf
    current[15:25] = np.nan

    feature = compute_drift({"x": reference}, {"x": current}).feature("x")

    finite = current[np.isfinite(current)]
    assert feature.ks_statistic == pytest.approx(ks_2samp(reference, finite).statistic)
    assert feature.infinite_rate_current == pytest.approx(15 / 2000)
    assert feature.null_rate_current == pytest.approx(10 / 2000)
    assert feature.status == "no_drift"


def test_a_jump_in_missing_values_is_drift_through_the_null_bin() -> None:
    rng = np.random.default_rng(29)
    reference = rng.normal(size=3000)
    current = rng.normal(size=3000)
    current[rng.uniform(size=3000) < 0.3] = np.nan

    feature = compute_drift({"x": reference}, {"x": current}).feature("x")

    assert feature.drifted
    assert feature.null_rate_current == pytest.approx(0.3, abs=0.03)
    assert feature.ks_statistic is not None and feature.ks_statistic < 0.1


def test_mostly_null_current_is_drift_on_null_share_even_with_few_values() -> None:
    rng = np.random.default_rng(30)
    current = rng.normal(size=3000)
    current[100:] = np.nan

    feature = compute_drift({"x": rng.normal(size=3000)}, {"x": current}).feature("x")

    assert feature.drifted
    assert "null share" in feature.reason


def test_non_numeric_value_in_a_numeric_column_names_side_column_and_row() -> None:
    reference = pd.DataFrame({"x": np.arange(300, dtype=float)})
    current = pd.DataFrame({"x": ["1.5"] * 5 + ["oops"] + ["2"] * 294})

    with pytest.raises(DriftInputError, match=r"current column 'x': value 'oops' at row 5"):
        compute_drift(reference, current)


def test_feature_not_in_reference_and_bad_kind_are_clear_errors() -> None:
    data = {"x": np.arange(10.0)}

    with pytest.raises(DriftInputError, match="feature 'y' is not a column of the reference"):
        compute_drift(data, data, features=["y"])
    with pytest.raises(DriftInputError, match="kind must be 'numeric' or 'categorical'"):
        compute_drift(data, data, features={"x": "text"})
    with pytest.raises(DriftInputError, match="different lengths"):
        compute_drift({"x": np.arange(3.0), "y": np.arange(4.0)}, data)


def test_thresholds_reject_nonsense_values() -> None:
    with pytest.raises(DriftInputError, match=r"thresholds\.ks_statistic"):
        DriftThresholds(ks_statistic=1.5)
    with pytest.raises(DriftInputError, match=r"thresholds\.min_samples"):
        DriftThresholds(min_samples=0)


@pytest.mark.parametrize(
    ("n_reference", "n_current", "shift"),
    [
        (30, 40, 0.5),
        (200, 150, 0.2),
        (1000, 700, 0.1),
        (5000, 4000, 0.05),
        (10_000, 9000, 0.03),
        (10_000, 10_000, 0.0),
        (10_001, 8000, 0.03),
        (25_000, 20_000, 0.02),
    ],
)
def test_ks_pvalue_matches_scipy_default_method_at_every_size(
    n_reference: int, n_current: int, shift: float
) -> None:
    """Exact p-values up to 10,000 values per side (the asymptotic formula is off by up to
    ~6e-3 there), asymptotic above, both to 1e-6 of scipy.stats.ks_2samp's default."""
    rng = np.random.default_rng(n_reference + n_current)
    reference, current = rng.normal(size=n_reference), rng.normal(shift, 1, size=n_current)

    feature = compute_drift(
        {"x": reference}, {"x": current}, thresholds=DriftThresholds(min_samples=10)
    ).feature("x")

    expected = ks_2samp(reference, current)
    assert feature.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert feature.ks_pvalue == pytest.approx(expected.pvalue, abs=1e-6)


def test_all_null_against_all_null_is_insufficient_data_not_no_drift() -> None:
    report = compute_drift({"x": np.full(500, np.nan)}, {"x": np.full(500, np.nan)})

    assert report.verdict == "insufficient_data"
    assert report.feature("x").status == "insufficient_data"


def _five_features(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {f"f{i}": rng.normal(size=n) for i in range(4)} | {
        "city": rng.choice(["paris", "rome", "oslo"], size=n)
    }


def test_one_materially_drifted_feature_of_five_is_drift_with_the_share_beside_it() -> None:
    """The issue's case: a 0.5 sigma mean shift on one of five features was "no_drift"."""
    rng = np.random.default_rng(41)
    reference, current = _five_features(rng, 5000), _five_features(rng, 5000)
    current["f0"] = current["f0"] + 0.5

    report = compute_drift(reference, current)

    assert report.drifted_features == ["f0"]
    assert report.verdict == "drift" and report.drift_detected
    assert report.drifted_share == pytest.approx(0.2)
    assert "1 of 5 features drifted (20%)" in report.summary


def test_one_new_category_of_five_features_is_drift() -> None:
    rng = np.random.default_rng(42)
    reference, current = _five_features(rng, 5000), _five_features(rng, 5000)
    current["city"][:50] = "lima"

    report = compute_drift(reference, current)

    assert report.drifted_features == ["city"] and report.verdict == "drift"


def test_a_larger_drifted_share_threshold_asks_for_more_than_that_share() -> None:
    rng = np.random.default_rng(43)
    reference, current = _five_features(rng, 5000), _five_features(rng, 5000)
    current["f0"] = current["f0"] + 0.5

    report = compute_drift(reference, current, thresholds=DriftThresholds(drifted_share=0.2))

    assert report.drifted_features == ["f0"] and report.verdict == "no_drift"  # 20% is not > 20%


def test_a_statistic_exactly_at_its_threshold_is_not_over_it_as_in_cloudwatch() -> None:
    """CloudWatch's GreaterThanThreshold is `>`: the report, DriftScore and the alarms agree."""
    from pipelines.drift_thresholds import over
    from pipelines.monitoring import drift_score

    limits = DriftThresholds()
    assert not over(limits.psi, limits.psi) and over(limits.psi + 1e-12, limits.psi)
    at = drift_score(limits, max_feature_psi=limits.psi, drifted_share=0.0, prediction_psi=None)
    above = drift_score(
        limits,
        max_feature_psi=math.nextafter(limits.psi, 1.0),
        drifted_share=0.0,
        prediction_psi=None,
    )
    assert at == 1.0 and above is not None and above > 1.0
    one_feature = drift_score(limits, max_feature_psi=0.0, drifted_share=0.2, prediction_psi=None)
    assert one_feature is not None and one_feature > 1.0  # drifted_share 0: any drifted feature
