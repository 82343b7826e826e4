"""sslmon.rules, the one home of the device, the seeds and the option bounds: each rule against hand-written cases."""

from __future__ import annotations

import pytest
import torch

from sslmon import rules
from sslmon.errors import OptionsError


@pytest.mark.parametrize(("value", "seeds"), [(3, (0, 1, 2)), (1, (0,)), ([4, 0, 7], (4, 0, 7)), ((2,), (2,))])
def test_seeds_from_a_count_or_a_list(value, seeds):
    assert rules.seeds_from(value) == seeds


@pytest.mark.parametrize("value", [0, -1, [], [1, 1], [-2], (0, 3, 3)])
def test_bad_seeds_name_the_parameter(value):
    with pytest.raises(OptionsError) as info:
        rules.seeds_from(value)
    assert info.value.param in ("seeds", "seed_count") and isinstance(info.value, ValueError)


@pytest.mark.parametrize(("text", "seeds"), [("3", (0, 1, 2)), ("0,5,7", (0, 5, 7)), ("4,", (4,)), (" 2 , 1", (2, 1))])
def test_parse_seeds_the_command_line_form(text, seeds):
    assert rules.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "-3", "a", "1,1", "1,-1", ""])
def test_parse_seeds_refuses_with_one_line(text):
    with pytest.raises(OptionsError, match="is not a seed count") as info:
        rules.parse_seeds(text)
    assert info.value.param == "seeds"


@pytest.mark.parametrize(("param", "good", "bad"), [
    ("limit", [1, 500, None], [0, -1]), ("batch_size", [1, 64], [0]), ("every_n_epochs", [1, 3], [0]),
    ("k", [2, 10, None], [1, 0]), ("bin_factor", [0.1, 0.8], [0.0, -0.4]), ("lidar_views", [0, 2, 8], [1, -1]),
    ("precision", ["fp32", "bf16"], ["fp16"]), ("weights", ["default", "none"], ["imagenet"]),
])
def test_bounds(param, good, bad):
    for value in good:
        rules.check(param, value)
    for value in bad:
        with pytest.raises(OptionsError, match=f"^{param}: ") as info:
            rules.check(param, value)
        assert info.value.param == param


def test_check_all_and_check_choice():
    rules.check_all({"limit": 5, "k": None, "not_a_bound": -1})  # only the values with a bound are checked
    with pytest.raises(OptionsError, match="^k: must be >= 2, got 1$"):
        rules.check_all({"limit": 5, "k": 1})
    rules.check_choice("executor", "local", ("local", "ray"))
    with pytest.raises(OptionsError, match="^executor: must be one of local, ray, got 'dask'$"):
        rules.check_choice("executor", "dask", ("local", "ray"))


def test_the_device_rule():
    assert rules.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert rules.resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(OptionsError, match="no CUDA device") as info:
            rules.resolve_device("cuda")
        assert info.value.param == "device"
    # the evaluation runs where float64 is: never on mps
    assert [rules.evaluation_device(d) for d in ("cpu", "cuda", "mps")] == ["cpu", "cuda", "cpu"]
    assert rules.evaluation_device(torch.device("cpu")) == "cpu"
