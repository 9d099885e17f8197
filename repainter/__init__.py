"""repainter: score and improve text-to-image models by image regeneration."""

__version__ = "0.1.0"
