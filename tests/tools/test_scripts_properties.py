"""Property-based tests (hypothesis) of the actions FILE parser: any text gives a finite (T, 5) script or one
ValueError naming the file, never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from worldscape_ros.tools.scripts import ActionScript, load_script

number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                   st.sampled_from(['nan', 'inf', '-inf', '1e308', '1e999', 'x', '', '#', ',']))


def _parse(name: str, data: bytes) -> ActionScript | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            script = load_script(path, fps=10.0)
        except ValueError as exc:  # UnicodeDecodeError included: it is a ValueError
            assert str(path) in str(exc) or isinstance(exc, UnicodeDecodeError), str(exc)
            return None
    assert script.actions.ndim == 2 and script.actions.shape[1] == 5
    assert np.all(np.isfinite(script.actions))
    return script


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(number, min_size=0, max_size=7), max_size=6), st.sampled_from([' ', ',', ', ', '\t']))
def test_any_csv_rows_parse_to_finite_actions_or_a_named_refusal(rows, sep):
    text = '\n'.join(sep.join(r) for r in rows)
    script = _parse('a.csv', text.encode())
    if script is not None:
        assert len(script) <= len(rows)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_as_a_csv_or_a_tour_are_refused_or_parsed(data):
    _parse('a.csv', data)
    _parse('a.yaml', data)


tour_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 50), st.floats(), st.text(max_size=5)),
                           lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                   st.dictionaries(st.sampled_from(
                                                       ['segments', 'frames', 'action', 'script', 'seed']),
                                                       inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(tour_values)
def test_any_json_tour_parses_to_finite_actions_or_a_named_refusal(doc):
    _parse('tour.json', json.dumps(doc).encode())
