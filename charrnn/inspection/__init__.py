"""Inspecting a trained model: recording every unit, finding the interpretable ones, and showing them."""
