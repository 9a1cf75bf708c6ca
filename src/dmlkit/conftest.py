"""Doctest collection settings for the package (``pytest --doctest-modules``)."""

collect_ignore = ["__main__.py"]
