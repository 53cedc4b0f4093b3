"""Tuple layouts: the published networks on 4x4 (TDL2048+'s pattern lists), their placement
on other boards, custom cells from the command line and the one-line errors for bad ones.

Pure functions, no training; the two network tests build "0,1,2;4,5,6,7"-sized networks
(under 1 MB)."""

from __future__ import annotations

import numpy as np
import pytest

from g2048lab import games
from g2048lab.learners.ntuple.layouts import (
    LAYOUT_NAMES,
    check_layout,
    symmetries,
    tuple_layout,
)
from g2048lab.learners.ntuple.network import NTupleConfig, NTupleNetwork, network_bytes

# As published in moporgic/TDL2048+ (2048.cpp, aliases(); README "N-Tuple Network"): one hex
# digit per cell, 0 top-left, f bottom-right, row-major.
PUBLISHED = {
    "4x6": "012345 456789 012456 45689a",  # 4x6patt/khyeh (Szubert & Jaśkowski 2014)
    "5x6": "012345 456789 89abcd 012456 45689a",  # 5x6patt/42-33 (Jaśkowski 2018)
    "6x6": "012456 456789 012345 234569 01259a 345678",  # 6x6patt/k.matsuzaki
    "8x6": "012456 456789 012345 234569 01259a 345678 134567 01489a",  # 8x6patt/k.matsuzaki
}

MEGABYTES_ON_4X4 = {"4x6": 268, "5x4": 1.3, "5x6": 336, "6x6": 403, "8x6": 537}
"""What the module docstring and the README say each layout weighs on 4x4."""


def hex_tuples(patterns: str) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(digit, 16) for digit in word) for word in patterns.split())


def assert_distinct_up_to_symmetry(layout, rows: int, cols: int) -> None:
    """Cells in range and ascending, and no tuple the image of another under a symmetry."""
    perms = symmetries(rows, cols)
    seen: set[tuple[int, ...]] = set()
    for cells in layout:
        assert list(cells) == sorted(set(cells)) and cells[0] >= 0 and cells[-1] < rows * cols
        images = {tuple(sorted(np.flatnonzero(np.isin(perm, cells)).tolist())) for perm in perms}
        assert not images & seen, cells
        seen |= images


# --- the named layouts ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_on_4x4_the_named_layouts_are_the_published_tuples(name):
    layout = tuple_layout(name, 4, 4)
    assert layout == hex_tuples(PUBLISHED[name])
    assert len(layout) == int(name[0]) and {len(cells) for cells in layout} == {6}
    assert_distinct_up_to_symmetry(layout, 4, 4)


def test_4x6_is_unchanged_and_the_bigger_sets_extend_it():
    standard = ((0, 1, 2, 3, 4, 5), (4, 5, 6, 7, 8, 9), (0, 1, 2, 4, 5, 6), (4, 5, 6, 8, 9, 10))
    assert tuple_layout("4x6", 4, 4) == standard
    assert set(standard) < set(tuple_layout("5x6", 4, 4))
    assert tuple_layout("6x6", 4, 4) == tuple_layout("8x6", 4, 4)[:6]


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_each_layouts_weights_on_4x4_are_as_documented(name):
    assert network_bytes(NTupleConfig(tuples=name, coherence=False)) / 1e6 == pytest.approx(
        MEGABYTES_ON_4X4[name], rel=0.05
    )


@pytest.mark.parametrize("rows, cols", [(5, 5), (6, 6), (4, 5), (6, 4)])
def test_5x6_is_placed_like_4x6_on_other_boards_with_the_row_of_4_at_every_row(rows, cols):
    layout = tuple_layout("5x6", rows, cols)
    assert_distinct_up_to_symmetry(layout, rows, cols)
    assert set(tuple_layout("4x6", rows, cols)) < set(layout)
    if rows == cols:  # the row of 4 and 2 below it, at every row (the last one cannot hold it)
        starts = {cells[0] for cells in layout if cells[3] - cells[0] == 3 and len(cells) == 6}
        assert {r * cols for r in range(rows - 1)} <= starts


@pytest.mark.parametrize(
    "name, rows, cols, fits",
    [
        ("6x6", 5, 5, "4x6, 5x4, 5x6"),
        ("8x6", 4, 5, "4x6, 5x4, 5x6"),
        ("5x6", 3, 3, "4x6, 5x4"),
        ("8x6", 3, 5, "4x6, 5x4"),
    ],
)
def test_a_named_layout_that_does_not_fit_the_board_says_which_do(name, rows, cols, fits):
    with pytest.raises(ValueError, match=f"{rows}x{cols} board; use one of {fits} or") as error:
        tuple_layout(name, rows, cols)
    assert "\n" not in str(error.value)


# --- custom cells -----------------------------------------------------------------------------


def test_custom_cells_parse_with_each_tuple_sorted():
    assert tuple_layout("0,1,2,3,4,5;4,5,6,7,8,9;0,1,2,4,5,6", 4, 4) == hex_tuples(
        "012345 456789 012456"
    )
    assert tuple_layout("5, 4,3 ,2;1,0", 3, 3) == ((2, 3, 4, 5), (0, 1))
    assert tuple_layout("24,0,1,2,3,4,5", 5, 5) == ((0, 1, 2, 3, 4, 5, 24),)


@pytest.mark.parametrize("spec", [*LAYOUT_NAMES, "0,1", "0,1,2,3;4,5,6,7", "40,1,2;3,4"])
def test_check_layout_takes_the_names_and_well_formed_cells(spec):
    assert check_layout(spec) is None


@pytest.mark.parametrize(
    "spec, message",
    [
        ("4x8", "unknown tuples layout '4x8'; use one of 4x6, 5x4, 5x6, 6x6, 8x6 or cells"),
        ("", "unknown tuples layout ''"),
        ("0123 4567", "unknown tuples layout"),  # TDL2048+'s hex digits are not taken
        ("0,1;2", r"tuple 2 has 1 cell; a tuple has 2 to 7"),
        ("0,1,2,3,4,5,6,7", r"tuple 1 has 8 cells; a tuple has 2 to 7"),
        ("0,1;;2,3", r"tuple 2 \(''\) is not whole numbers"),
        ("0,1,2;", r"tuple 2 \(''\) is not whole numbers"),
        ("0,1,1,2", "tuple 1 has cell 1 twice"),
        ("0,1,2;2,1,0", "tuple 2 repeats tuple 1"),
    ],
)
def test_a_bad_layout_is_a_one_line_error(spec, message):
    for check in (check_layout, lambda spec: tuple_layout(spec, 4, 4)):
        with pytest.raises(ValueError, match=message) as error:
            check(spec)
        assert "\n" not in str(error.value)


def test_a_cell_outside_the_board_is_named_with_the_board():
    assert check_layout("0,1,16") is None  # the board is not known here
    with pytest.raises(ValueError, match=r"cell 16 .* outside the 4x4 board \(cells 0..15\)"):
        tuple_layout("0,1,16", 4, 4)
    assert tuple_layout("0,1,16", 5, 5) == ((0, 1, 16),)


# --- networks of custom cells --------------------------------------------------------------


def test_a_network_of_custom_cells_reads_those_cells():
    config = NTupleConfig(tuples="4,5,6,7;3,2,1,0")
    assert config.features == 8 * 2
    assert NTupleNetwork(config).layout == ((4, 5, 6, 7), (0, 1, 2, 3))
    with pytest.raises(ValueError, match="unknown tuples layout 'rows'"):
        NTupleConfig(tuples="rows")


@pytest.mark.parametrize("packed", [True, False])
def test_tuples_of_different_lengths_value_a_board_as_defined(packed):
    """V(x) = sum over symmetries s, tuples t of weights[t, sum_k x[s][cell_k] * 16**k]."""
    layout = ((0, 1, 2), (4, 5, 6, 7))
    net = NTupleNetwork(NTupleConfig(tuples="0,1,2;4,5,6,7"), games.get("2048-4x4"), packed)
    net.weights[:] = np.random.default_rng(0).normal(0, 1, net.weights.shape)
    boards = np.random.default_rng(1).integers(0, 12, (10, 4, 4)).astype(np.uint8)
    want = [
        sum(
            float(net.weights[t, sum(int(board[perm][c]) << 4 * k for k, c in enumerate(cells))])
            for perm in symmetries(4, 4)
            for t, cells in enumerate(layout)
        )
        for board in boards.reshape(10, 16)
    ]
    np.testing.assert_allclose(net.values(boards), want, rtol=1e-5, atol=1e-4)
