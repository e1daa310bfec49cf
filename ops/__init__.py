"""What operators and CI run: `python -m ops.<command>` (README.md, docs/)."""
