"""Built-in strategies (registered by :mod:`evostrat.plugins.strategies`)."""
