"""A live Textual dashboard of FastApp's async farm."""

__all__: list[str] = []
