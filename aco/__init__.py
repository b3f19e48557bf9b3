"""ACO runtime: route agent requests to the cheapest model tier that will do.

Importing this package stays cheap: it never loads polars, pyarrow, scikit-learn,
lightgbm, matplotlib or pandas (a test checks ``sys.modules``).
"""

__version__ = "0.1.0"
