"""Small helpers for the CLI's English sentences."""


def count(number: int, singular: str, plural: str | None = None) -> str:
    """Return "1 photo" or "3 photos": the number with the noun in the right form."""
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"
