"""The benchmarks' own pieces that tests rely on too: the generated handwriting and the naive
resize peer (both in bench/)."""

import numpy as np
import pytest

from digitlab.vision.components import label
from pipelines import naive
from synth import KINDS, make_handwriting_set, render_number
from test_vision import seven


@pytest.fixture(scope="module")
def handwriting():
    return make_handwriting_set(3, seed=11)


def test_naive_is_resize_and_invert():
    out = naive(seven())
    assert out.dtype == np.uint8 and out.shape == (28, 28)
    assert out[0, 0] < 30 and out.max() > 100  # light paper became black


def test_handwriting_set_is_reproducible_and_complete(handwriting):
    again = make_handwriting_set(3, seed=11)
    assert [(label, kind) for _, label, kind in again] == [(label, kind) for _, label, kind in handwriting]
    for (a, _, _), (b, _, _) in zip(again, handwriting):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert {kind for _, _, kind in handwriting} == set(KINDS)
    assert [label for _, label, kind in handwriting if kind == "chalk"] == [0, 1, 2]
    other = make_handwriting_set(1, seed=12, kinds=["pen-on-paper"])[0][0]
    assert np.asarray(other).shape != np.asarray(handwriting[0][0]).shape or not np.array_equal(other, handwriting[0][0])


def test_image_i_does_not_depend_on_how_many_were_asked_for(handwriting):
    one = make_handwriting_set(1, seed=11, kinds=["thin-pen"])[0][0]
    first = next(im for im, _, kind in handwriting if kind == "thin-pen")
    np.testing.assert_array_equal(np.asarray(one), np.asarray(first))


def test_touching_numbers_touch():
    apart = label(np.asarray(render_number("2026", seed=4)) < 128)
    touching = label(np.asarray(render_number("2026", touching=True, seed=4)) < 128)
    assert len(apart) >= 4 and len(touching) < len(apart)


def test_numbers_in_boxes_have_a_box_for_each_digit():
    ink = np.asarray(render_number("2026", seed=4, boxes=True)) < 128
    rows = np.flatnonzero(ink.any(axis=1))
    walls = np.count_nonzero(ink[rows[0]:rows[-1] + 1], axis=0) >= 0.95 * (rows[-1] - rows[0] + 1)
    assert np.count_nonzero(np.diff(walls.astype(np.int8)) == 1) == 5  # two sides, three walls
    with pytest.raises(ValueError, match="apart"):
        render_number("2026", touching=True, boxes=True)


def test_a_number_photographed_askew_is_turned():
    upright = np.asarray(render_number("2026", seed=4, boxes=True)) < 128
    askew = np.asarray(render_number("2026", seed=4, boxes=True, degrees=4)) < 128
    assert askew.shape[0] > upright.shape[0] and askew.shape[1] > upright.shape[1]
    assert np.count_nonzero(askew) == pytest.approx(np.count_nonzero(upright), rel=0.05)

    def longest_row(ink):  # of the comb's width
        cols = np.flatnonzero(ink.any(axis=0))
        return np.count_nonzero(ink, axis=1).max() / (cols[-1] - cols[0] + 1)
    assert longest_row(upright) > 0.95 and longest_row(askew) < 0.5  # its lines no longer run along a row


def test_a_number_written_on_a_line_has_the_line_under_it():
    plain = np.asarray(render_number("2026", seed=4)) < 128
    ruled = np.asarray(render_number("2026", seed=4, ruled=True)) < 128
    cols = np.flatnonzero(plain.any(axis=0))
    line = np.flatnonzero(ruled.sum(axis=1) > cols[-1] - cols[0])  # rows longer than the writing
    assert line.size and line.min() >= np.flatnonzero(plain.any(axis=1))[-1] - 1  # under it
