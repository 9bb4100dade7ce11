"""The web page of a served mirror (`serve --mirror`): `/` and `/ui/...`.

The page is static (static/); its data comes from a few JSON reads here, made
straight over the index so a table of a thousand runs or a metric of a million
points costs one SQL query.  Charts are downsampled for drawing only: each series
answers at most two points (its min and max) per horizontal bucket of the range
asked for, so zooming in asks again and reaches every point.
"""
from .handlers import handle

__all__ = ["handle"]
