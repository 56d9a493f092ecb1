"""Figures built without plotly's validation, for speed, must still be figures plotly would accept unchanged."""

import plotly.graph_objects as go
import pytest

from convnets.predict import Prediction
from dashboard import figures


@pytest.mark.parametrize("classes", [[str(d) for d in range(10)], ["cat", "dog", "automobile"]])
def test_the_probability_chart_is_what_validated_plotly_builds(classes):
    probabilities = [0.1 / (len(classes) - 1)] * len(classes)
    probabilities[1] = 0.9
    p = Prediction("run", "lenet5", "LeNet-5", probabilities, classes)
    fast = figures.probabilities(p)
    validated = go.Figure(figures.probabilities_spec(p))  # raises on a misspelt property or a bad value
    assert fast.to_dict() == validated.to_dict()
    bar = fast.to_dict()["data"][0]
    assert list(bar["x"]) == classes and list(bar["y"]) == pytest.approx(probabilities)
    assert [c == figures.ACCENT for c in bar["marker"]["color"]] == [i == 1 for i in range(len(classes))]


def test_a_misspelt_property_is_caught_by_the_validated_build():
    """The check above can fail: plotly's validation rejects what the unvalidated build lets through."""
    spec = figures.probabilities_spec(Prediction("run", "lenet5", "LeNet-5", [0.2, 0.8], ["a", "b"]))
    spec["layout"]["yaxis"]["tickformatt"] = ".0%"
    go.Figure(spec, _validate=False)
    with pytest.raises(ValueError):
        go.Figure(spec)
