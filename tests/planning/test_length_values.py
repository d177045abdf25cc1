"""LengthValues: length arithmetic on ``meta`` tensors gets real values where the lengths decide them,
and stays unknown where weights or activations do."""

from __future__ import annotations

import pytest
import torch

from speechllm.masking import lengths_to_mask
from speechllm.planning.length_values import LengthValues, UnknownLengthError


def test_values_computed_from_known_lengths_can_be_read():
    with LengthValues() as values, values.following():
        lens = values.known(torch.tensor([7, 3]))
        windows = torch.div(lens + 4 - 1, 4, rounding_mode="floor")
        assert lens.device.type == "meta"
        assert int(windows.max()) == 2
        assert int(lengths_to_mask(lens, 7).sum()) == 10


def test_a_value_that_depends_on_weights_cannot_be_read():
    weight = torch.empty(4, 3, device="meta")
    with LengthValues() as values, values.following():
        labels = (torch.empty(2, 5, 4, device="meta") @ weight).argmax(dim=-1)
        with pytest.raises(UnknownLengthError, match="depends on weights"):
            int(labels.max())


def test_writing_an_unknown_value_in_place_makes_the_whole_storage_unknown():
    with LengthValues() as values, values.following():
        starts = torch.ones(2, 5, dtype=torch.bool, device="meta")
        assert int(starts.sum()) == 10
        starts[:, 1:] = torch.empty(2, 4, device="meta") > 0  # activations: no value
        with pytest.raises(UnknownLengthError):
            int(starts.sum())


def test_a_known_mask_selects_as_many_rows_as_it_holds_forward_and_backward():
    memory = torch.empty(6, 3, device="meta", requires_grad=True)
    with LengthValues() as values:
        with values.following():
            live = lengths_to_mask(values.known(torch.tensor([2, 1])), 3).flatten()
            picked = memory[live]
        assert picked.shape == (3, 3)
        picked.sum().backward()  # the backward selects with the same mask
    assert memory.grad.shape == (6, 3)


def test_outside_following_nothing_is_computed_for_real():
    with LengthValues():
        mask = torch.ones(3, dtype=torch.bool, device="meta")
        with pytest.raises(UnknownLengthError):
            int(mask.sum())
