"""The version of repainter, in a module of its own so that any module can read it without
importing the ``repainter`` package (whose lazy exports would close an import cycle).

>>> from repainter.version import __version__
>>> __version__.count(".") >= 1
True
"""

__version__ = "0.3.0"
