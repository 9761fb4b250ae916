"""Cross-validated tuning's fold logic on fake AUC tables (no tracking): a sequence is never scored with settings
chosen on it."""

from __future__ import annotations

import numpy as np
import pytest

from ocean_ros.train import crossval

NAMES = ["bag", "ball1", "Crossing", "Surfing06", "basketball", "book", "fernando", "iceskater1", "nature",
         "tiger", "traffic"]


def table_evaluate(table: dict[str, dict[str, float]]) -> crossval.Evaluate:
    """``evaluate`` over a fake table keyed by configuration name ({"id": name} configurations)."""

    def evaluate(configs):
        return [dict(table[c["id"]]) for c in configs]

    return evaluate


def test_folds_are_deterministic_by_name():
    folds = crossval.assign_folds(NAMES, 4)
    assert folds == crossval.assign_folds(list(reversed(NAMES)), 4)
    assert sorted(len(m) for m in crossval.fold_members(folds)) == [2, 3, 3, 3]
    assert folds["bag"] == 0 and folds["ball1"] == 1 and folds["basketball"] == 2  # sorted, dealt round-robin
    assert crossval.assign_folds(NAMES, 0) == crossval.assign_folds(NAMES, 11)  # leave-one-out
    assert len(crossval.fold_members(crossval.assign_folds(NAMES))) == 11
    with pytest.raises(ValueError):
        crossval.assign_folds(["a", "a"])


@pytest.mark.parametrize("k", [0, 4])
def test_a_configuration_best_on_one_sequence_only_is_never_chosen_for_it(k):
    # configuration i scores 0.9 on sequence i and 0.5 elsewhere, plus a preset at 0.6 everywhere
    table = {name: {n: (0.9 if n == name else 0.5) for n in NAMES} for name in NAMES}
    table["preset"] = dict.fromkeys(NAMES, 0.6)
    configs = [{"id": "preset"}] + [{"id": n} for n in NAMES]
    cv = crossval.cross_validate(NAMES, table_evaluate(table), crossval.grid_selector(configs), k=k)
    for name, held in cv.held_out.items():
        assert held.config["id"] != name  # its own configuration would need its own AUC to win
        training = [n for n in NAMES if cv.folds[n] != cv.folds[name]]
        assert held.config["id"] in ("preset", *training)
        assert held.auc == table[held.config["id"]][name]
    if k == 0:  # leave-one-out: on 10 sequences one 0.9 and nine 0.5 (mean 0.54) lose to the preset's 0.6
        assert all(h.config["id"] == "preset" for h in cv.held_out.values())
        assert cv.estimate == pytest.approx(0.6)
    assert cv.chosen["id"] == "preset"


def test_in_sample_winner_is_reported_beside_a_lower_held_out_estimate():
    # "lucky" is best on average only because of one sequence; held out, that sequence gets the next best
    table = {"preset": dict.fromkeys(NAMES, 0.60), "lucky": {**dict.fromkeys(NAMES, 0.58), "tiger": 0.95}}
    configs = [{"id": "preset"}, {"id": "lucky"}]
    cv = crossval.cross_validate(NAMES, table_evaluate(table), crossval.grid_selector(configs))
    assert cv.chosen["id"] == "lucky"
    assert cv.held_out["tiger"].config["id"] == "preset" and cv.held_out["tiger"].auc == 0.60
    assert cv.held_out["bag"].config["id"] == "lucky"
    assert cv.estimate == pytest.approx((10 * 0.58 + 0.60) / 11)
    assert cv.estimate < np.mean(list(cv.chosen_aucs.values()))


def _random_table(rng: np.random.Generator, configs: int) -> dict[str, dict[str, float]]:
    return {f"c{i}": {n: float(rng.uniform(0.2, 0.9)) for n in NAMES} for i in range(configs)}


@pytest.mark.parametrize("k", [0, 3, 4])
def test_a_folds_choice_never_reads_its_own_sequences(k):
    """Instrumented accessor: what each fold's selector read holds none of the fold's sequences; and poisoning
    the held-out sequences' entries (huge values for one configuration) never changes that fold's choice."""
    rng = np.random.default_rng(k)
    for _ in range(20):
        table = _random_table(rng, 6)
        configs = [{"id": c} for c in table]
        folds = crossval.assign_folds(NAMES, k)
        seen: list[set[str]] = []  # per selector call (one per fold, then the one on all): the names it read

        def spy(evaluate, weight_min, seen=seen, configs=configs):
            seen.append(set())

            def watched(configs_):
                rows = evaluate(configs_)
                seen[-1].update(n for r in rows for n in r)
                return rows

            return crossval.grid_selector(configs)(watched, weight_min)

        cv = crossval.cross_validate(NAMES, table_evaluate(table), spy, weight_min=0.5, k=k)
        assert len(seen) == len(crossval.fold_members(folds)) + 1 and seen[-1] == set(NAMES)
        for fold, members in enumerate(crossval.fold_members(folds)):
            assert seen[fold] == set(NAMES) - set(members)

        for fold, members in enumerate(crossval.fold_members(folds)):
            poisoned = {c: dict(row) for c, row in table.items()}
            target = str(rng.choice(list(table)))
            for n in members:
                poisoned[target][n] = 1e6
            for c in poisoned:
                if c != target:
                    for n in members:
                        poisoned[c][n] = float("nan")
            again = crossval.cross_validate(NAMES, table_evaluate(poisoned), crossval.grid_selector(configs),
                                            weight_min=0.5, k=k)
            assert again.fold_choices[fold] == cv.fold_choices[fold]


def test_coordinate_search_per_fold_is_blind_to_the_fold_too():
    """The default coordinate search, on a table defined by a function of the values: poisoning held-out
    sequences does not move a fold's choice, and it does move the choice made on all sequences."""
    base = {"a": 1, "b": 1}
    grid = {"a": [0, 1, 2], "b": [0, 1, 2]}

    def make(poison: set[str]) -> crossval.Evaluate:
        def evaluate(configs):
            rows = []
            for c in configs:
                row = {n: 0.5 + 0.01 * c["a"] - 0.01 * abs(c["b"] - 1) for n in NAMES}
                for n in poison:
                    row[n] = 100.0 if c["a"] == 0 else -100.0  # pulls any search that reads it to a=0
                rows.append(row)
            return rows

        return evaluate

    selector = crossval.coordinate_selector(base, grid, rounds=2)
    clean = crossval.cross_validate(NAMES, make(set()), selector, k=4)
    assert clean.chosen == {"a": 2, "b": 1}
    for fold, members in enumerate(crossval.fold_members(clean.folds)):
        poisoned = crossval.cross_validate(NAMES, make(set(members)), selector, k=4)
        assert poisoned.fold_choices[fold] == clean.fold_choices[fold] == {"a": 2, "b": 1}
        assert poisoned.held_out[members[0]].auc == -100.0  # scored with the fold's choice, poison and all
    assert crossval.cross_validate(NAMES, make({"tiger"}), selector).chosen["a"] == 0  # the poison works


def test_objective_mean_plus_weighted_min_and_nan_rows_lose():
    assert crossval.objective({"a": 0.4, "b": 0.8}) == pytest.approx(0.6)
    assert crossval.objective({"a": 0.4, "b": 0.8}, 1.0) == pytest.approx(1.0)
    assert crossval.objective({"a": float("nan"), "b": 0.8}) == -np.inf
    assert crossval.product_configs({"x": 0, "y": 0}, {"y": [1, 2]}) == [{"x": 0, "y": 1}, {"x": 0, "y": 2}]


def test_threshold_is_chosen_without_the_held_out_frames():
    """Per fold the lost threshold comes from the other folds' frames: poisoning a fold's own frames (scores
    arranged to pull the threshold anywhere) leaves its threshold unchanged."""
    rng = np.random.default_rng(3)
    table = {"preset": dict.fromkeys(NAMES, 0.6)}
    cv = crossval.cross_validate(NAMES, table_evaluate(table), crossval.grid_selector([{"id": "preset"}]), k=4)
    frames = {n: (rng.uniform(0, 1, 50), rng.choice([0.0, 0.05, 0.7, 0.9], 50)) for n in NAMES}
    clean = crossval.cross_validate_threshold(cv, lambda c, n: frames[n])
    for fold, members in enumerate(crossval.fold_members(cv.folds)):
        poisoned = dict(frames)
        for n in members:
            ious = frames[n][1]
            poisoned[n] = (np.where(ious >= 0.5, 0.99, 0.98), ious)  # would put the threshold near 0.985
        again = crossval.cross_validate_threshold(cv, lambda c, n, p=poisoned: p[n])
        assert again.fold_thresholds[fold] == clean.fold_thresholds[fold]
    final = crossval.choose_lost_threshold(np.concatenate([f[0] for f in frames.values()]),
                                           np.concatenate([f[1] for f in frames.values()]))
    assert clean.threshold == final.threshold and 0.0 <= clean.estimate <= 1.0
