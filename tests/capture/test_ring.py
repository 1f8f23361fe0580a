"""RowRing: the last rows of a stream, in memory that grows with what was seen."""

import numpy as np
import pytest

from capture.ring import INITIAL_ROWS, RowRing


def test_keeps_the_last_rows_and_grows_only_as_it_fills() -> None:
    ring = RowRing(size=200, dim=3)
    assert ring.nbytes() == INITIAL_ROWS * 3 * 4 and ring.rows().shape == (0, 3)
    for i in range(100):
        ring.append(np.full(3, i, dtype=np.float32))
    assert ring.filled == 100 and ring.nbytes() == 128 * 3 * 4  # doubled once, not 200 rows
    assert ring.rows()[:, 0].tolist() == list(range(100))
    for i in range(100, 450):
        ring.append(np.full(3, i, dtype=np.float32))
    assert ring.filled == 200 and ring.seen == 450 and ring.nbytes() == 200 * 3 * 4
    assert sorted(ring.rows()[:, 0].tolist()) == list(range(250, 450))  # the last 200
    assert ring.rows()[450 % 200, 0] == 250  # the oldest is overwritten next


def test_refuses_empty_shapes() -> None:
    with pytest.raises(ValueError, match="positive"):
        RowRing(size=0, dim=3)
