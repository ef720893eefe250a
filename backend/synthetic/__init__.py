"""The synthetic world: procedural creatures with known joints, a CPU renderer, and data sets."""

from .creatures import CATEGORIES, Creature, generate_creature

__all__ = ["CATEGORIES", "Creature", "generate_creature"]
