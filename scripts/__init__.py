"""The command lines. Installed with the package as ``project.scripts`` (see pyproject.toml), so
``python -m project.scripts.fraud`` and ``project-fraud`` work after ``pip install .``."""
