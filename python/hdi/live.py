"""Live charts in Jupyter without widgets: a matplotlib figure shown once with a display id and
redrawn in place (``display(..., display_id=True)``, then ``handle.update(...)``).

The figure is a plain ``matplotlib.figure.Figure`` (not pyplot's), so the inline backend does
not show it a second time at the end of the cell, and it renders as PNG in JupyterLab, in
classic Notebook and in headless runs (papermill, nbclient) alike. Outside IPython it only
keeps the last PNG (``LiveChart.png``) and can save it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

__all__ = ["LiveChart"]


class LiveChart:
    """A figure that ``update`` redraws in place in the notebook's output.

    >>> chart = LiveChart(ncols=2, figsize=(11, 4))
    >>> for df in hdi.kafka.stream(access, "transactions", seconds=30):
    ...     chart.update(lambda fig, axes: draw(axes, df))
    """

    def __init__(self, nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (10, 4),
                 dpi: int = 90):
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        axes = self.figure.subplots(nrows, ncols, squeeze=False)
        self.axes: list[Any] = [ax for row in axes for ax in row]
        self.updates = 0
        self.png: bytes | None = None
        self._handle: Any = None

    def update(self, draw: Callable[[Any, list[Any]], None] | None = None) -> None:
        """Clears the axes, calls ``draw(figure, axes)``, renders the figure and shows it (the
        first time) or replaces what was shown."""
        if draw is not None:
            for ax in self.axes:
                ax.clear()
            draw(self.figure, self.axes)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        self.png = buffer.getvalue()
        self.updates += 1
        try:
            from IPython.display import Image, display
        except ImportError:
            return
        image = Image(data=self.png, format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)

    def save(self, path: str | Path) -> None:
        """Writes the last rendered PNG to ``path``."""
        if self.png is None:
            raise ValueError("nothing drawn yet: call update() first")
        Path(path).write_bytes(self.png)
