"""FastApp's demo web app."""

__all__: list[str] = []
