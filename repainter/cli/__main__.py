"""``python -m repainter.cli``: the ``repainter`` command."""

from repainter.cli import app

if __name__ == "__main__":  # importing the module (the import checks do) runs nothing
    app()
