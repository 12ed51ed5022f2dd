"""Hypothesis strategies shared by the codec property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

finite_or_special = st.one_of(
    st.floats(-400, 400, width=32),
    st.sampled_from([np.nan, 1e30, -1e30, 1e-40, -0.0]),
)


@st.composite
def masked_blocks(draw):
    """(x, mask): small float32 blocks with NaN, extremes and about a quarter of points masked."""
    shape = draw(st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8)))
    x = draw(arrays(np.float32, shape, elements=finite_or_special))
    mask = draw(arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 1, 1])))
    return x, mask
