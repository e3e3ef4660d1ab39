"""Serving trained generators: export them (``gauguin export``) and run them without PyTorch."""
