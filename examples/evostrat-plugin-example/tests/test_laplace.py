"""The plugin's distribution: evostrat's distribution conformance kit over every installed backend."""

from evostrat.testing import DISTRIBUTION_CHECKS, check_distribution
from evostrat_plugin_example import Laplace


def test_laplace_fulfils_the_distribution_contract():
    assert check_distribution(Laplace) == list(DISTRIBUTION_CHECKS)
