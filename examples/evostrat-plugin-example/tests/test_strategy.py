"""The plugin's own tests: evostrat's conformance kit over every installed backend.

Run from this folder with ``python -m pytest`` (the package installed, or ``src`` on
``PYTHONPATH``).
"""

from evostrat.testing import check_strategy
from evostrat_plugin_example import OnePlusLambdaES


def test_one_plus_lambda_es_fulfils_the_strategy_contract():
    ran = check_strategy(OnePlusLambdaES)
    assert {"contract", "ask", "pure", "seed", "state_dict", "progress"} <= set(ran)


def test_a_small_population_fulfils_it_too():
    check_strategy(OnePlusLambdaES(popsize=3, sigma0=0.3), backends=["numpy"])
